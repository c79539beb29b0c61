// The canvasflow browser app.
import "@xyflow/react/dist/style.css";
import "./styles/app.css";
import "./styles/canvas.css";
import { createRoot } from "react-dom/client";
import { App } from "./app/App.jsx";

createRoot(document.getElementById("root")).render(<App />);
