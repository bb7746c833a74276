// Parse one 3DGS PLY with the PLY parser of @mkkellogg/gaussian-splats-3d (a three.js splat viewer) in node.
//
//   cd FOLDER_WITH_node_modules/@mkkellogg/gaussian-splats-3d && node splat_parse.mjs FILE.ply
//
// Prints the splat count, the SH degree the viewer reads, and every splat as the viewer holds it:
// [x, y, z, scale0, scale1, scale2, qw, qx, qy, qz, r, g, b, a] (colour and opacity as 0-255).
// Used by `tests/helpers.py::splat_viewer_parse`.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const mod = path.join(process.cwd(), "node_modules", "@mkkellogg", "gaussian-splats-3d", "build", "gaussian-splats-3d.module.js");
const GS = await import(pathToFileURL(mod).href);
const bytes = readFileSync(process.argv[2]);
const arr = GS.PlyParser.parseToUncompressedSplatArray(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), 0);
const version = JSON.parse(readFileSync(path.join(path.dirname(mod), "..", "package.json"), "utf8")).version;
console.log("A3D_SPLATS_JSON " + JSON.stringify({ viewer: version, count: arr.splatCount, splats: arr.splats.map((s) => Array.from(s).slice(0, 14)) }));
