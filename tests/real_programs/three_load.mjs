// Load one glTF binary with three.js' GLTFLoader in node, as a web page does, and print what it made as JSON.
//
//   cd FOLDER_WITH_node_modules/three && node three_load.mjs FILE.glb [SECONDS,SECONDS,...]
//
// Prints the three.js revision, every mesh (skinned or not, vertex count, attributes, morph targets,
// skeleton bones, flat shading, the largest normal difference between copies of one position, the largest angle
// between a triangle's own normal and the normal at one of its corners, vertex colours, base-colour map size, bounding box), the bone count, every AnimationClip
// (name, duration, tracks with their key counts), and, for each time asked (in order), every mesh's world-space
// vertex positions that AnimationMixer + the morph/skinning maths of `getVertexPosition` give at that time. Node has no image
// decoder, so `createImageBitmap` is replaced by one that reads a PNG's size from its header (all a test
// needs). Used by `tests/helpers.py::three_load`.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const pkg = path.join(process.cwd(), "node_modules", "three");
const THREE = await import(pathToFileURL(path.join(pkg, "build", "three.module.js")).href);
const { GLTFLoader } = await import(pathToFileURL(path.join(pkg, "examples", "jsm", "loaders", "GLTFLoader.js")).href);

globalThis.self = globalThis;
globalThis.createImageBitmap = async (blob) => {
  const b = new Uint8Array(await blob.arrayBuffer());
  if (b[0] !== 0x89 || b[1] !== 0x50 || b[2] !== 0x4e || b[3] !== 0x47) throw new Error("not a PNG image");
  const d = new DataView(b.buffer, b.byteOffset);
  return { width: d.getUint32(16), height: d.getUint32(20), close() {} };
};

const bytes = readFileSync(process.argv[2]);
const times = process.argv[3] ? process.argv[3].split(",").map(Number) : [];
const gltf = await new GLTFLoader().parseAsync(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), "");
const out = { three: THREE.REVISION, meshes: [], bones: 0, clips: [], positions: [] };
const meshes = [];
gltf.scene.traverse((o) => {
  if (o.isBone) out.bones += 1;
  if (!o.isMesh) return;
  meshes.push(o);
  const g = o.geometry;
  const box = new THREE.Box3().setFromBufferAttribute(g.attributes.position);
  // shading creases: the largest normal difference between vertices at one position (UV-seam copies)
  let seamGap = 0;
  if (g.attributes.normal) {
    const p = g.attributes.position, n = g.attributes.normal, first = new Map();
    for (let i = 0; i < p.count; i++) {
      const key = `${p.getX(i)},${p.getY(i)},${p.getZ(i)}`;
      if (!first.has(key)) first.set(key, i);
      const j = first.get(key);
      seamGap = Math.max(seamGap, Math.abs(n.getX(i) - n.getX(j)), Math.abs(n.getY(i) - n.getY(j)), Math.abs(n.getZ(i) - n.getZ(j)));
    }
  }
  // facets: the largest angle (degrees) between a triangle's own normal and the normal at one of its corners
  let faceGap = 0;
  if (g.attributes.normal) {
    const tri = new THREE.Triangle(), own = new THREE.Vector3(), at = new THREE.Vector3();
    const index = g.index ? g.index.array : null, count = index ? index.length : g.attributes.position.count;
    for (let k = 0; k < count; k += 3) {
      const c = [0, 1, 2].map((m) => (index ? index[k + m] : k + m));
      tri.setFromAttributeAndIndices(g.attributes.position, c[0], c[1], c[2]);
      if (tri.getArea() === 0) continue;
      tri.getNormal(own);
      for (const i of c) faceGap = Math.max(faceGap, THREE.MathUtils.radToDeg(own.angleTo(at.fromBufferAttribute(g.attributes.normal, i))));
    }
  }
  out.meshes.push({
    name: o.name, skinned: !!o.isSkinnedMesh, vertices: g.attributes.position.count, attributes: Object.keys(g.attributes),
    morph_targets: (g.morphAttributes.position || []).length, morph_normals: (g.morphAttributes.normal || []).length,
    skeleton_bones: o.isSkinnedMesh ? o.skeleton.bones.length : 0, flat_shading: !!o.material.flatShading, seam_normal_gap: seamGap, face_normal_degrees: faceGap,
    vertex_colors: !!o.material.vertexColors,
    map: o.material.map ? [o.material.map.image.width, o.material.map.image.height] : null,
    bbox: [box.min.toArray(), box.max.toArray()],
  });
});
for (const c of gltf.animations) out.clips.push({ name: c.name, duration: c.duration, tracks: c.tracks.map((t) => [t.name, t.times.length]) });
if (times.length && gltf.animations.length) {
  const mixer = new THREE.AnimationMixer(gltf.scene);
  // play once and hold the end: setTime(duration) then shows the clip's last key instead of wrapping to 0
  const action = mixer.clipAction(gltf.animations[0]);
  action.setLoop(THREE.LoopOnce, 1);
  action.clampWhenFinished = true;
  action.play();
  const v = new THREE.Vector3();
  for (const t of times) {
    action.reset(); // un-pause a clip a previous time finished
    mixer.setTime(t);
    gltf.scene.updateMatrixWorld(true);
    out.positions.push(meshes.map((m) => {
      const pts = [];
      for (let i = 0; i < m.geometry.attributes.position.count; i++) pts.push(m.localToWorld(m.getVertexPosition(i, v)).toArray());
      return pts;
    }));
  }
}
console.log("A3D_THREE_JSON " + JSON.stringify(out));
