// The node-type registry: one component per node type (React Flow's `nodeTypes`,
// registered in this one map), and what each type derives from the graph for its
// component. A new node type is a spec (specs.js), a port table (ports.js) and a line here.
import { ImageGenNode } from "./ImageGenNode.jsx";
import { deriveImageGen } from "./image-gen-view.js";
import { ImageNode } from "./ImageNode.jsx";
import { PromptNode } from "./PromptNode.jsx";
import { VideoNode } from "./VideoNode.jsx";
import { deriveVideo } from "./video-view.js";

export const nodeTypes = { prompt: PromptNode, image: ImageNode, image_gen: ImageGenNode, video: VideoNode };

/** Per type: (node, graph, jobs) → the `view` prop of its component. */
export const derivers = { video: deriveVideo, image_gen: deriveImageGen };
