// The canvas itself: React Flow drawing the live store's nodes and edges. React Flow
// does selection, marquee, dragging, pan/zoom, the minimap, handles and connection
// validation; this component routes its change objects into the store and its
// gestures into the command API, and adds the context menu, file drops and keys.
import { Background, MiniMap, Panel, ReactFlow, useReactFlow, useStore, useStoreApi } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { CanvasMenu } from "./CanvasMenu.jsx";
import { othersHere } from "./presence.js";
import { RemoteCursors } from "./RemoteCursors.jsx";
import { edgeTypes } from "./ConnectionEdge.jsx";
import { createFlowMapper } from "./flow.js";
import { visibleRect } from "./placement.js";
import { ShortcutsDialog } from "./ShortcutsDialog.jsx";
import { Toolbar } from "./Toolbar.jsx";
import { useCanvasKeys } from "./useCanvasKeys.js";
import { derivers, nodeTypes } from "../nodes/registry.js";

const NUDGE_SAVE_MS = 500;
const MINIMAP_COLORS = { prompt: "#f3b44b", image: "#3fcfae", video: "#a98bff" };
const clickStartOf = (s) => s.connectionClickStartHandle;
const round = (v) => Math.round(v * 10) / 10;

function loadViewport(projectId) {
  try {
    const saved = JSON.parse(localStorage.getItem(`cf-view-${projectId}`));
    if (saved && [saved.x, saved.y, saved.zoom].every(Number.isFinite)) return saved;
  } catch {
    /* a corrupt entry: start from the default view */
  }
  return { x: 40, y: 40, zoom: 1 };
}

export function Flow({ store, commands }) {
  const view = useSyncExternalStore(store.subscribe, store.getView);
  const rf = useReactFlow();
  const rfStore = useStoreApi();
  const clickStart = useStore(clickStartOf);
  const toFlow = useMemo(() => createFlowMapper(derivers), []);
  const { nodes, edges } = useMemo(() => toFlow(view), [toFlow, view]);
  const defaultViewport = useMemo(() => loadViewport(commands.projectId), [commands.projectId]);
  const wrapper = useRef(null);
  const pointer = useRef(null); // the last pointer position over the canvas (screen)
  const drag = useRef(null); // positions of the dragged nodes when the drag began
  const nudge = useRef(null); // {from: Map, timer}: arrow-key moves waiting to be saved
  const [menu, setMenu] = useState(null);
  const [help, setHelp] = useState(false);
  const canEdit = view.role === "owner" || view.role === "editor";
  const others = useMemo(() => othersHere(view.presence, view.me?.id), [view.presence, view.me]);

  useEffect(() => {
    commands.attachFlow({
      visibleRect() {
        const rect = wrapper.current?.getBoundingClientRect() || { width: 1200, height: 800 };
        return visibleRect(rf.getViewport(), rect.width, rect.height);
      },
    });
  }, [commands, rf]);

  // -- moves: a drag is saved when it ends; arrow-key nudges after a pause, as one undo

  const saveNudge = useCallback(() => {
    const pending = nudge.current;
    nudge.current = null;
    if (!pending) return;
    const now = store.getView().nodes;
    const moves = [...pending.from].filter(([id]) => now.has(id)).map(([id, from]) => ({ id, from, to: { x: now.get(id).x, y: now.get(id).y } }));
    commands.moveNodes(moves, { key: "nudge" }).catch(() => {});
  }, [commands, store]);

  const onNodesChange = useCallback(
    (changes) => {
      const before = store.getView().nodes;
      const moved = store.applyNodeChanges(changes);
      const nudged = moved.filter((m) => !m.dragging && !drag.current);
      if (!nudged.length) return;
      const pending = (nudge.current ||= { from: new Map(), timer: null });
      for (const m of nudged) {
        const old = before.get(m.id);
        if (old && !pending.from.has(m.id)) pending.from.set(m.id, { x: old.x, y: old.y });
      }
      clearTimeout(pending.timer);
      pending.timer = setTimeout(saveNudge, NUDGE_SAVE_MS);
    },
    [store, saveNudge],
  );
  useEffect(() => () => saveNudge(), [saveNudge]);

  const nudgeSelection = useCallback(
    (dx, dy) => {
      const v = store.getView();
      if (!(v.role === "owner" || v.role === "editor")) return; // a viewer moves nothing
      const changes = [...v.selectedNodes]
        .map((id) => v.nodes.get(id))
        .filter(Boolean)
        .map((n) => ({ type: "position", id: n.id, position: { x: n.x + dx, y: n.y + dy }, dragging: false }));
      onNodesChange(changes);
    },
    [store, onNodesChange],
  );

  const onEdgesChange = useCallback((changes) => store.applyEdgeChanges(changes), [store]);

  const onNodeDragStart = useCallback(
    (_event, _node, dragged) => {
      const v = store.getView().nodes;
      drag.current = new Map(dragged.map((n) => [n.id, { x: v.get(n.id)?.x ?? n.position.x, y: v.get(n.id)?.y ?? n.position.y }]));
    },
    [store],
  );

  const onNodeDragStop = useCallback(
    (_event, _node, dragged) => {
      const from = drag.current;
      drag.current = null;
      if (!from) return;
      const moves = dragged.filter((n) => from.has(n.id)).map((n) => ({ id: n.id, from: from.get(n.id), to: { x: round(n.position.x), y: round(n.position.y) } }));
      commands.moveNodes(moves).catch(() => {});
    },
    [commands],
  );

  // -- connections

  const isValidConnection = useCallback((c) => !commands.refuse(c), [commands]);
  const onConnect = useCallback((c) => commands.connect(c).catch(() => {}), [commands]);
  const onConnectEnd = useCallback(
    (_event, state) => {
      // dropped on an input that does not fit: say why
      if (state.toHandle && !state.isValid && state.fromHandle) {
        const from = state.fromHandle;
        const to = state.toHandle;
        const link = from.type === "source"
          ? { source: from.nodeId, sourceHandle: from.id, target: to.nodeId, targetHandle: to.id }
          : { source: to.nodeId, sourceHandle: to.id, target: from.nodeId, targetHandle: from.id };
        const refused = commands.refuse(link);
        if (refused) commands.notify(refused.message, "error", { key: "connect" });
      } else if (!state.toHandle && state.fromHandle?.type === "source") {
        // dropped on a card with no input that fits (a prompt onto a prompt): say why
        const point = "changedTouches" in event ? event.changedTouches[0] : event;
        const card = document.elementFromPoint(point.clientX, point.clientY)?.closest(".react-flow__node");
        const target = card?.dataset.id;
        if (target && target !== state.fromHandle.nodeId) {
          const refused = commands.refuse({ source: state.fromHandle.nodeId, sourceHandle: state.fromHandle.id, target, targetHandle: null });
          if (refused) commands.notify(refused.message, "error", { key: "connect" });
        }
      }
    },
    [commands],
  );

  // -- menu, drop, pointer

  const openMenuAt = useCallback(
    (x, y, kind) => {
      const box = wrapper.current.getBoundingClientRect();
      setMenu({ x: Math.min(x, box.right - 220) - box.left, y: Math.min(y, box.bottom - 240) - box.top, at: rf.screenToFlowPosition({ x, y }), kind });
    },
    [rf],
  );
  const closeMenu = useCallback(() => setMenu(null), []);

  const onPaneContextMenu = useCallback(
    (event) => {
      event.preventDefault();
      openMenuAt(event.clientX, event.clientY, "pane");
    },
    [openMenuAt],
  );
  const onNodeContextMenu = useCallback(
    (event, node) => {
      event.preventDefault();
      if (!store.getView().selectedNodes.has(node.id)) store.select([node.id]);
      openMenuAt(event.clientX, event.clientY, "node");
    },
    [store, openMenuAt],
  );
  // Shift/Ctrl/Cmd-click toggles a node in the selection as it was before the press
  // (React Flow, dragging from the first pixel, selects on pointer down)
  const selectionAtPress = useRef(null);
  const onPointerDownCapture = () => {
    selectionAtPress.current = new Set(store.getView().selectedNodes);
  };
  const onNodeClick = useCallback(
    (event, node) => {
      if (!(event.shiftKey || event.ctrlKey || event.metaKey) || !selectionAtPress.current) return;
      const next = new Set(selectionAtPress.current);
      if (next.has(node.id)) next.delete(node.id);
      else next.add(node.id);
      store.select([...next], [...store.getView().selectedEdges]);
    },
    [store],
  );

  const onDoubleClick = (event) => {
    if (event.target.classList?.contains("react-flow__pane")) openMenuAt(event.clientX, event.clientY, "pane");
  };

  const onDragOver = (event) => {
    if ([...(event.dataTransfer?.types || [])].includes("Files")) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  };
  const onDrop = (event) => {
    const file = [...(event.dataTransfer?.files || [])].find((f) => f.type.startsWith("image/"));
    if (!file) return;
    event.preventDefault();
    commands.dropImage(file, rf.screenToFlowPosition({ x: event.clientX, y: event.clientY })).catch(() => {});
  };

  const zoomToSelection = useCallback(() => {
    const ids = [...store.getView().selectedNodes];
    if (ids.length) rf.fitView({ nodes: ids.map((id) => ({ id })), padding: 0.3, maxZoom: 1.5, duration: 0 });
  }, [rf, store]);

  useCanvasKeys({
    commands,
    store,
    rf,
    rfStore,
    wrapper,
    pointerAt: () => (pointer.current ? rf.screenToFlowPosition(pointer.current) : null),
    nudge: nudgeSelection,
    openMenu: () => {
      const box = wrapper.current.getBoundingClientRect();
      openMenuAt(box.left + box.width / 2, box.top + box.height / 3, store.getView().selectedNodes.size ? "node" : "pane");
    },
    closeMenu,
    menuOpen: () => menu !== null,
    showHelp: () => setHelp(true),
    zoomToSelection,
  });

  // every viewport change is kept at once: a reload right after a wheel zoom finds it
  const onMoveEnd = useCallback((_e, vp) => localStorage.setItem(`cf-view-${commands.projectId}`, JSON.stringify(vp)), [commands.projectId]);

  return (
    <div
      ref={wrapper}
      className="viewport"
      id="viewport"
      tabIndex={0}
      aria-label="Canvas. Drag the background to pan, scroll to zoom, Shift-drag to select; press ? for every shortcut."
      data-nodes={String(view.nodes.size)}
      onPointerMove={(e) => {
        pointer.current = { x: e.clientX, y: e.clientY };
        commands.presence?.cursor(rf.screenToFlowPosition(pointer.current));
      }}
      onPointerLeave={() => {
        pointer.current = null;
        commands.presence?.cursor(null);
      }}
      onPointerDownCapture={onPointerDownCapture}
      onDoubleClick={onDoubleClick}
      onDragOver={onDragOver}
      onDrop={onDrop}
    >
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        isValidConnection={isValidConnection}
        nodesConnectable={canEdit}
        nodesDraggable={canEdit}
        edgesReconnectable={false}
        onNodeClick={onNodeClick}
        onNodeDragStart={onNodeDragStart}
        onNodeDragStop={onNodeDragStop}
        onPaneContextMenu={onPaneContextMenu}
        onNodeContextMenu={onNodeContextMenu}
        onMove={onMoveEnd}
        defaultViewport={defaultViewport}
        minZoom={0.25}
        maxZoom={2}
        zoomOnDoubleClick={false}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={["Shift", "Control", "Meta"]}
        nodeDragThreshold={0}
        colorMode="dark"
        proOptions={{ hideAttribution: false }}
      >
        <Background gap={24} size={1.2} color="#262b36" />
        <MiniMap
          pannable
          zoomable
          ariaLabel="Minimap: click to go there"
          nodeColor={(n) => MINIMAP_COLORS[n.type] || "#888"}
          maskColor="rgba(13, 15, 20, 0.7)"
          onClick={(_e, at) => rf.setCenter(at.x, at.y, { zoom: rf.getZoom(), duration: 0 })}
        />
        <Panel position="top-left" className="toolbar-panel">
          <Toolbar commands={commands} hasSelection={view.selectedNodes.size > 0} onHelp={() => setHelp(true)} zoomToSelection={zoomToSelection} canEdit={canEdit} />
        </Panel>
        <RemoteCursors others={others} />
      </ReactFlow>
      {!view.loaded && (
        <div className="loading" role="status">
          Loading canvas…
        </div>
      )}
      {view.loaded && view.nodes.size === 0 && (
        <div className="empty-hint">
          <h2>An empty canvas</h2>
          <p className="muted">
            Add a prompt, an image and a video node (or double-click the canvas), then drag from an output handle{" "}
            <span className="handle-sample handle-sample-out" aria-hidden="true" /> to a video node&apos;s input{" "}
            <span className="handle-sample" aria-hidden="true" />.
          </p>
        </div>
      )}
      {clickStart && (
        <div className="connect-hint" role="status">
          Now choose a highlighted input to connect to. Esc cancels.
        </div>
      )}
      <p className="canvas-help muted small">Drag to pan · Shift-drag to select · double-click to add · ? for shortcuts</p>
      {menu && <CanvasMenu canEdit={canEdit} menu={menu} commands={commands} onClose={closeMenu} onSelectAll={() => store.select([...store.getView().nodes.keys()])} onFit={() => rf.fitView({ padding: 0.15, maxZoom: 1, duration: 0 })} />}
      {help && <ShortcutsDialog onClose={() => setHelp(false)} />}
    </div>
  );
}
