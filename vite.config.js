// Vite builds the canvas from static/src into static/: static/index.html and
// static/app/canvasflow.{js,css}, under fixed names so a rebuild of the same sources
// is byte for byte the committed bundle (static/check-bundle.sh compares them).
// `npm run dev` serves the sources with hot reload and sends the API, the websocket,
// media and the plain files of static/ to a running `canvasflow dev`
// (CANVASFLOW_DEV_URL, default http://127.0.0.1:8000).
import { defineConfig } from "vite";

const backend = process.env.CANVASFLOW_DEV_URL || "http://127.0.0.1:8000";

/** Proxy `path` to the backend as if the page came from it (its CSRF and Origin checks pass). */
function toBackend(ws = false) {
  return {
    target: ws ? backend.replace(/^http/, "ws") : backend,
    ws,
    changeOrigin: true,
    configure(proxy) {
      proxy.on("proxyReq", (req) => req.setHeader("origin", backend));
      proxy.on("proxyReqWs", (req) => req.setHeader("origin", backend));
    },
  };
}

export default defineConfig({
  root: "static/src",
  base: "/",
  publicDir: false,
  build: {
    outDir: process.env.CANVASFLOW_BUILD_DIR || "..",
    // static/ holds other files (cf-client.js, favicon.svg): never empty it
    emptyOutDir: false,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1000,
    rollupOptions: {
      input: "static/src/index.html",
      // React Flow marks its module "use client" (for server components): moot in a bundle
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
      output: {
        entryFileNames: "app/canvasflow.js",
        chunkFileNames: "app/[name].js",
        assetFileNames: "app/canvasflow[extname]",
      },
    },
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": toBackend(),
      "/media": toBackend(),
      "/ws": toBackend(true),
      "/favicon.svg": toBackend(),
    },
  },
});
