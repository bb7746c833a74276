"""Run inside Blender: import one glTF file the way a user does and print what Blender made of it as JSON.

    blender -b --factory-startup --python blender_import.py -- FILE.glb [FRAME,FRAME,...]

Prints one line `A3D_BLENDER_JSON {...}`: the scene's fps, every object (type, parent, vertex and polygon
count, smooth-shaded polygons, the largest angle between a polygon's normal and the split normal Blender shades
one of its corners with, shape keys, modifiers, colour attributes, armature bones, materials with
their image sizes and whether a colour-attribute node feeds them, the action that drives it), every action's frame range and curve count, and, for each frame asked (in
order, fractional frames allowed), {mesh name: evaluated world-space vertex positions}. Used by
`tests/helpers.py::blender_import`; it reads nothing but the file it is given.
"""

import json
import math
import sys

import bpy
import numpy

if "bool" not in numpy.__dict__:
    # Debian's Blender 3.4 glTF importer still uses `np.bool`, which Debian's numpy 1.24 removed.
    numpy.bool = bool

args = sys.argv[sys.argv.index("--") + 1 :]
path = args[0]
frames = [float(x) for x in args[1].split(",")] if len(args) > 1 and args[1] else []

bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
scene = bpy.context.scene
out = {"blender": bpy.app.version_string, "fps": scene.render.fps / scene.render.fps_base, "objects": [], "actions": []}
for ob in bpy.data.objects:
    info = {"name": ob.name, "type": ob.type, "parent": ob.parent.name if ob.parent else None}
    anim = ob.animation_data
    if ob.type == "MESH":
        me = ob.data
        me.calc_normals_split()  # the corner normals shown: a glTF's NORMAL (custom split normals), or Blender's own
        facet = max((math.degrees(p.normal.angle(me.loops[k].normal, 0.0)) for p in me.polygons for k in p.loop_indices), default=0.0)
        info.update(
            vertices=len(me.vertices),
            polygons=len(me.polygons),
            smooth_polygons=sum(p.use_smooth for p in me.polygons),
            face_normal_degrees=facet,
            shape_keys=[k.name for k in me.shape_keys.key_blocks] if me.shape_keys else [],
            modifiers=[m.type for m in ob.modifiers],
            uv_layers=len(me.uv_layers),
            color_attributes=[a.name for a in me.color_attributes],
            materials=[
                {
                    "name": m.name,
                    "images": [list(n.image.size) for n in m.node_tree.nodes if n.type == "TEX_IMAGE" and n.image],
                    "vertex_colors": any(n.type == "VERTEX_COLOR" for n in m.node_tree.nodes),
                }
                for m in me.materials
                if m is not None and m.use_nodes
            ],
        )
        if me.shape_keys and me.shape_keys.animation_data:
            anim = me.shape_keys.animation_data
    if ob.type == "ARMATURE":
        info["bones"] = len(ob.data.bones)
    info["action"] = anim.action.name if anim and anim.action else None
    out["objects"].append(info)
for action in bpy.data.actions:
    out["actions"].append(
        {"name": action.name, "frame_range": list(action.frame_range), "fcurves": len(action.fcurves)}
    )

out["positions"] = []
for frame in frames:
    whole = math.floor(frame)
    scene.frame_set(whole, subframe=frame - whole)
    graph = bpy.context.evaluated_depsgraph_get()
    meshes = {}
    for ob in bpy.data.objects:
        if ob.type != "MESH":
            continue
        ev = ob.evaluated_get(graph)
        me = ev.to_mesh()
        meshes[ob.name] = [list(ev.matrix_world @ v.co) for v in me.vertices]
        ev.to_mesh_clear()
    out["positions"].append(meshes)
print("A3D_BLENDER_JSON " + json.dumps(out))
