"""The embedded benchmark: procedurally rendered rooms with exact multi-task ground truth.

Real datasets and pretrained weights cannot be downloaded everywhere, so every recipe and the demo default to this
benchmark. Each sample is a furnished 3D room (floor, four walls, ceiling; crates, balls, barrels, tables, cabinets,
beds, lamps) seen by a pinhole camera, rendered by vectorised ray casting over a whole batch of scenes at once. The
renderer computes every label from the same geometry, so tasks share real structure:

- depth is the z-buffer (distance along the optical axis, metres) of the first hit;
- normals are the analytic surface normals in the camera frame (OpenCV axes: x right, y down, z forward), facing the
  camera, so on planar surfaces they equal the normal of the depth map back-projected with the intrinsics;
- segmentation is the class of the hit primitive, so every class boundary is an occlusion (depth jump) or a crease
  (normal change);
- edges (Sobel magnitude of the luminance) and keypoints (Harris corner response) are computed from the rendered
  image, as Taskonomy's ``edge_texture`` and ``keypoints2d`` are; reconstruction is the image itself.

Procedural textures (stripes, checkers, smooth waves) and lighting (ambient + a coloured directional light + a
coloured point light with fall-off, Lambertian) make the image -> label mapping non-trivial. Scenes are sampled from
``numpy.random.default_rng([seed, split, index])``, so a sample depends only on (seed, split, index), never on the
batch it is rendered in.

`load_pretraining_images` is the encoder pre-training set: images only, 50,000 by default, half drawn from the tasks'
scene distribution and half from `PRETRAINING_STYLE` (wider rooms, cameras, lenses and lights, more and rescaled
objects, extra object kinds, any colour, three more textures), from random streams that no task split uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .specs import BENCHMARK_CLASS_NAMES, BENCHMARK_PRESETS, benchmark_task_specs, make_description


# Bump when the generator's output changes, so stale caches are not reused.
GENERATOR_VERSION = 1

SPLITS = ("train", "validation", "test")
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
DEFAULT_SIZES: dict[str, int] = {"train": 2000, "validation": 200, "test": 500}
# The encoder pre-training set: images only, from random streams no task split uses.
PRETRAINING_SPLITS = ("train", "validation")
_PRETRAINING_SPLIT_CODES = {"train": 10, "validation": 11}
PRETRAINING_SIZES: dict[str, int] = {"train": 50000, "validation": 1000}

# Class ids (index into BENCHMARK_CLASS_NAMES).
FLOOR, WALL, CEILING, BOX, BALL, BARREL, TABLE, CABINET, BED, LAMP = range(10)
OBJECT_KINDS = ("box", "ball", "barrel", "table", "cabinet", "bed", "lamp")

# Primitive slots per scene (unused slots are inactive and never hit).
N_BOXES, N_SPHERES, N_CYLINDERS = 6, 3, 4
N_ROOM_SURFACES = 6  # x-, x+, floor (y-), ceiling (y+), z-, z+
N_SURFACES = N_ROOM_SURFACES + N_BOXES + N_SPHERES + N_CYLINDERS
_EPS = 1e-4
_FAR = np.float32(1e6)


# Columns of the per-surface table gathered once per pixel by the renderer.
_C_CLASS, _C_TYPE, _C_A, _C_B, _C_FREQ, _C_ANGLE, _C_PHASE, _C_CENTER, _C_HALF, _C_SHAPE = (
    0,
    1,
    2,
    5,
    8,
    9,
    10,
    11,
    14,
    17,
)
_N_COLS = 18
_SHAPE_ROOM, _SHAPE_BOX, _SHAPE_SPHERE, _SHAPE_CYLINDER = 0, 1, 2, 3


@dataclasses.dataclass
class SceneBatch:
    """Parameters of B scenes, in fixed-size slots so that scenes can be stacked and rendered together."""

    cam_pos: np.ndarray  # (B, 3) world position (y up, floor at y = 0)
    cam_rot: np.ndarray  # (B, 3, 3) columns: camera x (right), y (down), z (forward) axes in world coordinates
    focal: np.ndarray  # (B,) focal length in units of the image width (square pixels, centred principal point)
    room_lo: np.ndarray  # (B, 3)
    room_hi: np.ndarray  # (B, 3)
    box_lo: np.ndarray  # (B, NB, 3)
    box_hi: np.ndarray  # (B, NB, 3)
    box_active: np.ndarray  # (B, NB) bool
    sph_center: np.ndarray  # (B, NS, 3)
    sph_radius: np.ndarray  # (B, NS)
    sph_active: np.ndarray  # (B, NS) bool
    cyl_center: np.ndarray  # (B, NC, 2) (x, z) of the vertical axis
    cyl_y0: np.ndarray  # (B, NC)
    cyl_y1: np.ndarray  # (B, NC)
    cyl_radius: np.ndarray  # (B, NC)
    cyl_active: np.ndarray  # (B, NC) bool
    surfaces: np.ndarray  # (B, S, _N_COLS) class, material and normal geometry of every surface
    ambient: np.ndarray  # (B, 3)
    sun_dir: np.ndarray  # (B, 3) direction the light travels (unit)
    sun_col: np.ndarray  # (B, 3)
    lamp_pos: np.ndarray  # (B, 3)
    lamp_col: np.ndarray  # (B, 3)
    lamp_falloff: np.ndarray  # (B,)

    @property
    def batch_size(self) -> int:
        return int(self.cam_pos.shape[0])

    @classmethod
    def stack(cls, scenes: list[dict[str, np.ndarray]]) -> SceneBatch:
        return cls(**{f.name: np.stack([s[f.name] for s in scenes]) for f in dataclasses.fields(cls)})


# ----------------------------------------------------------------------------------------------------------------
# Scene sampling: a small Python loop per scene over pre-drawn random numbers; rendering is the vectorised part.
# ----------------------------------------------------------------------------------------------------------------


class _Draws:
    """Uniform numbers drawn in blocks from one generator (scalar Generator calls cost ~1 us each)."""

    def __init__(self, rng: np.random.Generator, block: int = 256) -> None:
        self.rng, self.block = rng, block
        self.values: list[float] = rng.random(block).tolist()
        self.pos = 0

    def __call__(self, low: float = 0.0, high: float = 1.0) -> float:
        if self.pos == len(self.values):
            self.values, self.pos = self.rng.random(self.block).tolist(), 0
        u = self.values[self.pos]
        self.pos += 1
        return low + (high - low) * u

    def index(self, n: int) -> int:
        return min(int(self() * n), n - 1)

    def choice(self, probs: tuple[float, ...]) -> int:
        u, acc = self() * sum(probs), 0.0
        for i, p in enumerate(probs):
            acc += p
            if u < acc:
                return i
        return len(probs) - 1


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


# Per class: hue centre, hue spread, saturation range, value range, texture-type weights (plain, stripes, checkers,
# waves), pattern frequency range (cycles/m). Tendencies overlap: appearance helps but does not give the label away.
_MATERIAL_PRIORS: dict[int, tuple] = {
    FLOOR: (0.08, 0.08, (0.3, 0.7), (0.35, 0.8), (0.1, 0.35, 0.4, 0.15), (1.5, 4.0)),
    WALL: (0.5, 0.5, (0.05, 0.35), (0.6, 0.95), (0.45, 0.25, 0.05, 0.25), (1.0, 3.0)),
    CEILING: (0.12, 0.2, (0.0, 0.15), (0.75, 1.0), (0.7, 0.05, 0.1, 0.15), (1.0, 2.5)),
    BOX: (0.09, 0.06, (0.4, 0.8), (0.4, 0.85), (0.2, 0.5, 0.1, 0.2), (4.0, 9.0)),
    BALL: (0.5, 0.5, (0.6, 1.0), (0.6, 1.0), (0.3, 0.3, 0.2, 0.2), (3.0, 8.0)),
    BARREL: (0.0, 0.1, (0.5, 0.9), (0.35, 0.8), (0.2, 0.5, 0.0, 0.3), (4.0, 10.0)),
    TABLE: (0.07, 0.05, (0.4, 0.7), (0.3, 0.65), (0.3, 0.4, 0.0, 0.3), (5.0, 12.0)),
    CABINET: (0.6, 0.4, (0.1, 0.5), (0.4, 0.9), (0.5, 0.3, 0.0, 0.2), (3.0, 7.0)),
    BED: (0.7, 0.3, (0.3, 0.7), (0.5, 0.95), (0.2, 0.3, 0.3, 0.2), (3.0, 8.0)),
    LAMP: (0.14, 0.05, (0.3, 0.8), (0.8, 1.0), (0.6, 0.2, 0.0, 0.2), (4.0, 10.0)),
}


def _material(u: _Draws, cls: int, style: SceneStyle | None = None) -> list[float]:
    """[type, a_rgb, b_rgb, freq, angle, phase] for one surface of class `cls`."""
    hue, spread, (s0, s1), (v0, v1), weights, (f0, f1) = _MATERIAL_PRIORS[cls]
    if style is not None and style.free_colours:  # any colour, any texture, wider frequencies
        hue, spread, (s0, s1), (v0, v1) = 0.5, 0.5, (0.0, 1.0), (0.1, 1.0)
        weights = tuple(0.55 * w for w in weights) + (0.15, 0.15, 0.15)
        f0, f1 = 0.4 * f0, 2.0 * f1
    h = hue + u(-spread, spread)
    a = _hsv(h, u(s0, s1), u(v0, v1))
    b = _hsv(h + u(-0.15, 0.15), u(0.0, 1.0), u(0.1, 1.0))
    return [float(u.choice(weights)), *a, *b, u(f0, f1), u(0.0, math.pi), u(0.0, 2 * math.pi)]


def _camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Columns = camera right, down, forward in world coordinates (y up), with right x down = forward."""
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    f = (cp * sy, sp, cp * cy)
    r = (-cy, 0.0, sy)  # f x (0, 1, 0), normalised (its norm is cos(pitch))
    d = (f[1] * r[2] - f[2] * r[1], f[2] * r[0] - f[0] * r[2], f[0] * r[1] - f[1] * r[0])  # f x r
    c, s = math.cos(roll), math.sin(roll)
    r, d = [c * a + s * b for a, b in zip(r, d)], [c * b - s * a for a, b in zip(r, d)]
    return np.array([r, d, f], dtype=np.float32).T


_CLASS_OF_KIND = {
    "box": BOX,
    "ball": BALL,
    "barrel": BARREL,
    "table": TABLE,
    "cabinet": CABINET,
    "bed": BED,
    "stack": BOX,
    "pillar": BARREL,
    "floating_ball": BALL,
}
_NEEDS = {
    "stack": {"box": 2},
    "pillar": {"cyl": 1},
    "floating_ball": {"sph": 1},
    "box": {"box": 1},
    "ball": {"sph": 1},
    "barrel": {"cyl": 1},
    "table": {"box": 1, "cyl": 1},
    "cabinet": {"box": 1},
    "bed": {"box": 2},
    "lamp": {"sph": 1, "cyl": 1},
}
_CAPACITY = {"box": N_BOXES, "sph": N_SPHERES, "cyl": N_CYLINDERS}
_SURFACE_OFFSET = {
    "box": N_ROOM_SURFACES,
    "sph": N_ROOM_SURFACES + N_BOXES,
    "cyl": N_ROOM_SURFACES + N_BOXES + N_SPHERES,
}


@dataclasses.dataclass(frozen=True)
class SceneStyle:
    """Ranges a scene is drawn from. The default is the task benchmark's distribution (its samples never change);
    `PRETRAINING_STYLE` widens every range and adds object kinds, colours and textures, for encoder pre-training.

    Ranges are (low, high) of uniform draws; angles in degrees. `object_scale` (None: no draw) multiplies each
    object's size; `free_colours` ignores the per-class colour/texture priors and enables three more textures
    (plaid, dots, rings).
    """

    room_half: tuple[float, float] = (1.8, 3.6)
    room_height: tuple[float, float] = (2.4, 3.2)
    camera_height: tuple[float, float] = (1.0, 1.8)
    pitch: tuple[float, float] = (-30.0, 8.0)
    roll: tuple[float, float] = (-6.0, 6.0)
    fov: tuple[float, float] = (55.0, 75.0)
    max_objects: int = 7
    object_kinds: tuple[str, ...] = OBJECT_KINDS
    object_scale: tuple[float, float] | None = None
    free_colours: bool = False
    ambient_value: tuple[float, float] = (0.15, 0.4)
    sun_value: tuple[float, float] = (0.2, 0.7)
    lamp_value: tuple[float, float] = (0.5, 1.2)
    lamp_falloff: tuple[float, float] = (0.03, 0.12)


DEFAULT_STYLE = SceneStyle()
PRETRAINING_STYLE = SceneStyle(
    room_half=(1.3, 5.0),
    room_height=(2.2, 4.2),
    camera_height=(0.3, 2.4),
    pitch=(-60.0, 35.0),
    roll=(-25.0, 25.0),
    fov=(35.0, 100.0),
    max_objects=11,
    object_kinds=OBJECT_KINDS + ("stack", "pillar", "floating_ball"),
    object_scale=(0.5, 1.6),
    free_colours=True,
    ambient_value=(0.03, 0.6),
    sun_value=(0.0, 1.2),
    lamp_value=(0.1, 2.0),
    lamp_falloff=(0.01, 0.4),
)


def sample_scene(rng: np.random.Generator, style: SceneStyle = DEFAULT_STYLE) -> dict[str, np.ndarray]:
    """Sample one scene: room, camera, 2-7 objects placed without overlap (2-`style.max_objects`), materials and
    lights. The default style draws exactly the task benchmark's scenes."""
    u = _Draws(rng)
    f32 = np.float32
    half_w, half_d, height = u(*style.room_half), u(*style.room_half), u(*style.room_height)
    cam = (u(-half_w + 0.4, half_w - 0.4), u(*style.camera_height), u(-half_d + 0.4, half_d - 0.4))
    # Look into the room (the longest free view ahead of a few random headings), so that the far walls and the
    # objects placed in front of the camera fill the view.
    best = (-1.0, 0.0)
    for _try in range(6):
        yaw = math.atan2(-cam[0], -cam[2]) + u(-1.2, 1.2) if u() < 0.7 else u(0.0, 2 * math.pi)
        sx, sz = math.sin(yaw), math.cos(yaw)
        ahead = min(
            ((half_w if sx > 0 else -half_w) - cam[0]) / sx if abs(sx) > 1e-6 else math.inf,
            ((half_d if sz > 0 else -half_d) - cam[2]) / sz if abs(sz) > 1e-6 else math.inf,
        )
        best = max(best, (min(ahead, 3.0), yaw))
    yaw = best[1]
    pitch, roll = math.radians(u(*style.pitch)), math.radians(u(*style.roll))
    fov = math.radians(u(*style.fov))

    box_lo = np.full((N_BOXES, 3), _FAR, dtype=f32)
    box_hi = np.full((N_BOXES, 3), _FAR, dtype=f32)
    sph_c = np.full((N_SPHERES, 3), _FAR, dtype=f32)
    sph_r = np.ones(N_SPHERES, dtype=f32)
    cyl_c = np.full((N_CYLINDERS, 2), _FAR, dtype=f32)
    cyl_y0, cyl_y1, cyl_r = np.zeros(N_CYLINDERS, f32), np.zeros(N_CYLINDERS, f32), np.ones(N_CYLINDERS, f32)
    surf = np.zeros((N_SURFACES, _N_COLS), dtype=f32)
    room_center, room_half = (0.0, height / 2, 0.0), (half_w, height / 2, half_d)
    for s, cls in enumerate((WALL, WALL, FLOOR, CEILING, WALL, WALL)):
        surf[s, _C_CLASS], surf[s, _C_SHAPE] = cls, _SHAPE_ROOM
        surf[s, _C_CENTER : _C_CENTER + 3], surf[s, _C_HALF : _C_HALF + 3] = room_center, room_half
    counts = {"box": 0, "sph": 0, "cyl": 0}
    owners: list[list[int]] = []  # surfaces of each object (they share one material)

    def take(kind: str) -> int:
        counts[kind] += 1
        return counts[kind] - 1

    def set_box(i: int, lo: tuple, hi: tuple, cls: int) -> int:
        box_lo[i], box_hi[i] = lo, hi
        s = _SURFACE_OFFSET["box"] + i
        surf[s, _C_CLASS], surf[s, _C_SHAPE] = cls, _SHAPE_BOX
        surf[s, _C_CENTER : _C_CENTER + 3] = [(a + b) / 2 for a, b in zip(lo, hi)]
        surf[s, _C_HALF : _C_HALF + 3] = [(b - a) / 2 for a, b in zip(lo, hi)]
        return s

    def set_sphere(i: int, center: tuple, r: float, cls: int) -> int:
        sph_c[i], sph_r[i] = center, r
        s = _SURFACE_OFFSET["sph"] + i
        surf[s, _C_CLASS], surf[s, _C_SHAPE] = cls, _SHAPE_SPHERE
        surf[s, _C_CENTER : _C_CENTER + 3], surf[s, _C_HALF : _C_HALF + 3] = center, (r, r, r)
        return s

    def set_cylinder(i: int, x: float, z: float, y0: float, y1: float, r: float, cls: int) -> int:
        cyl_c[i], cyl_y0[i], cyl_y1[i], cyl_r[i] = (x, z), y0, y1, r
        s = _SURFACE_OFFSET["cyl"] + i
        surf[s, _C_CLASS], surf[s, _C_SHAPE] = cls, _SHAPE_CYLINDER
        surf[s, _C_CENTER : _C_CENTER + 3], surf[s, _C_HALF : _C_HALF + 3] = (x, y1, z), (r, 1.0, r)
        return s

    footprints: list[tuple[float, float, float]] = [(cam[0], cam[2], 0.35)]
    kinds = style.object_kinds
    for _ in range(2 + u.index(style.max_objects - 1)):
        kind = kinds[u.index(len(kinds))]
        if any(counts[k] + n > _CAPACITY[k] for k, n in _NEEDS[kind].items()):
            continue
        r = h = 0.0
        if kind in ("box", "stack"):
            hx, hz, h = u(0.15, 0.45), u(0.15, 0.45), u(0.25, 0.9)
        elif kind == "pillar":
            r, h = u(0.05, 0.25), height - 0.02
            hx = hz = r
        elif kind == "floating_ball":
            r, h = u(0.1, 0.35), u(0.6, height - 0.5)  # h: height of the centre
            hx = hz = r
        elif kind in ("ball", "barrel", "lamp"):
            r = {"ball": u(0.15, 0.45), "barrel": u(0.15, 0.4), "lamp": u(0.15, 0.25)}[kind]
            h = {"ball": 0.0, "barrel": u(0.4, 1.2), "lamp": u(1.1, 1.6)}[kind]
            hx = hz = r
        elif kind == "table":
            hx, hz, h = u(0.4, 0.8), u(0.3, 0.5), u(0.6, 0.8)
        elif kind == "cabinet":
            hx, hz, h = u(0.3, 0.6), u(0.18, 0.3), u(1.2, 2.0)
        else:  # bed
            hx, hz, h = u(0.6, 0.9), u(0.95, 1.05), u(0.35, 0.55)
        if kind in ("cabinet", "bed") and u() < 0.5:
            hx, hz = hz, hx
        if style.object_scale is not None and kind not in ("pillar", "floating_ball"):
            scale = u(*style.object_scale)
            hx, hz, h, r = hx * scale, hz * scale, min(h * scale, height - 0.1), r * scale
        radius = math.hypot(hx, hz)
        placed = None
        for _try in range(12):
            if u() < 0.8:  # in front of the camera, so that objects are usually visible
                ang, dist = yaw + u(-0.45, 0.45) * fov, u(1.0, 4.5)
                x, z = cam[0] + dist * math.sin(ang), cam[2] + dist * math.cos(ang)
            else:
                x, z = u(-half_w, half_w), u(-half_d, half_d)
            # Keep a gap to the walls: no coplanar faces, so every class boundary is a depth or normal discontinuity.
            x = min(max(x, -half_w + hx + 0.05), half_w - hx - 0.05)
            z = min(max(z, -half_d + hz + 0.05), half_d - hz - 0.05)
            if all(math.hypot(x - ox, z - oz) > radius + orad + 0.05 for ox, oz, orad in footprints):
                placed = (x, z)
                break
        if placed is None:
            continue
        x, z = placed
        footprints.append((x, z, radius))
        cls = _CLASS_OF_KIND.get(kind, LAMP)
        if kind in ("box", "cabinet"):
            owned = [set_box(take("box"), (x - hx, 0.0, z - hz), (x + hx, h, z + hz), cls)]
        elif kind == "stack":  # a smaller box resting on a box
            top_x, top_z, top_h = hx * u(0.4, 0.9), hz * u(0.4, 0.9), min(h * u(0.4, 1.0), height - h - 0.05)
            dx, dz = u(-1.0, 1.0) * (hx - top_x), u(-1.0, 1.0) * (hz - top_z)
            owned = [
                set_box(take("box"), (x - hx, 0.0, z - hz), (x + hx, h, z + hz), cls),
                set_box(
                    take("box"),
                    (x + dx - top_x, h, z + dz - top_z),
                    (x + dx + top_x, h + max(top_h, 0.02), z + dz + top_z),
                    cls,
                ),
            ]
        elif kind == "pillar":
            owned = [set_cylinder(take("cyl"), x, z, 0.0, h, r, cls)]
        elif kind == "floating_ball":
            owned = [set_sphere(take("sph"), (x, h, z), r, cls)]
        elif kind == "ball":
            owned = [set_sphere(take("sph"), (x, r, z), r, cls)]
        elif kind == "barrel":
            owned = [set_cylinder(take("cyl"), x, z, 0.0, h, r, cls)]
        elif kind == "table":
            thick = u(0.04, 0.08)
            owned = [
                set_box(take("box"), (x - hx, h - thick, z - hz), (x + hx, h, z + hz), cls),
                set_cylinder(take("cyl"), x, z, 0.0, h - thick, u(0.05, 0.1), cls),
            ]
        elif kind == "bed":
            owned = [set_box(take("box"), (x - hx, 0.0, z - hz), (x + hx, h, z + hz), cls)]
            top, end = h + u(0.4, 0.7), u() < 0.5  # headboard at one end of the long axis
            if hz > hx:
                z0 = z - hz if end else z + hz - 0.08
                owned.append(set_box(take("box"), (x - hx, 0.0, z0), (x + hx, top, z0 + 0.08), cls))
            else:
                x0 = x - hx if end else x + hx - 0.08
                owned.append(set_box(take("box"), (x0, 0.0, z - hz), (x0 + 0.08, top, z + hz), cls))
        else:  # lamp: pole + spherical shade
            owned = [
                set_cylinder(take("cyl"), x, z, 0.0, h, u(0.02, 0.04), cls),
                set_sphere(take("sph"), (x, h + 0.6 * r, z), r, cls),
            ]
        owners.append(owned)

    # Materials: the four walls usually share one; the surfaces of an object share one.
    wall = _material(u, WALL, style)
    for s in range(N_ROOM_SURFACES):
        cls = int(surf[s, _C_CLASS])
        surf[s, _C_TYPE:_C_CENTER] = wall if cls == WALL and u() < 0.75 else _material(u, cls, style)
    for owned in owners:
        surf[owned, _C_TYPE:_C_CENTER] = _material(u, int(surf[owned[0], _C_CLASS]), style)

    el, az = u(0.3, 1.3), u(0.0, 2 * math.pi)
    return {
        "cam_pos": np.array(cam, dtype=f32),
        "cam_rot": _camera_rotation(yaw, pitch, roll),
        "focal": np.float32(0.5 / math.tan(fov / 2)),
        "room_lo": np.array([-half_w, 0.0, -half_d], dtype=f32),
        "room_hi": np.array([half_w, height, half_d], dtype=f32),
        "box_lo": box_lo,
        "box_hi": box_hi,
        "box_active": np.arange(N_BOXES) < counts["box"],
        "sph_center": sph_c,
        "sph_radius": sph_r,
        "sph_active": np.arange(N_SPHERES) < counts["sph"],
        "cyl_center": cyl_c,
        "cyl_y0": cyl_y0,
        "cyl_y1": cyl_y1,
        "cyl_radius": cyl_r,
        "cyl_active": np.arange(N_CYLINDERS) < counts["cyl"],
        "surfaces": surf,
        "ambient": np.array(_hsv(u(), u(0.0, 0.2), u(*style.ambient_value)), dtype=f32),
        "sun_dir": np.array([math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az)], dtype=f32),
        "sun_col": np.array(_hsv(u(), u(0.0, 0.35), u(*style.sun_value)), dtype=f32),
        "lamp_pos": np.array([u(-0.8, 0.8) * half_w, height - u(0.1, 0.6), u(-0.8, 0.8) * half_d], dtype=f32),
        "lamp_col": np.array(_hsv(u(), u(0.0, 0.4), u(*style.lamp_value)), dtype=f32),
        "lamp_falloff": np.float32(u(*style.lamp_falloff)),
    }


def sample_scenes(seed: int, split: str, indices: range | list[int] | np.ndarray) -> SceneBatch:
    """Scenes for the given sample indices of a split; each depends only on (seed, split, index)."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; choose one of {list(_SPLIT_CODES)}")
    code = _SPLIT_CODES[split]
    return SceneBatch.stack([sample_scene(np.random.default_rng([int(seed), code, int(i)])) for i in indices])


def sample_pretraining_scenes(
    seed: int, split: str, indices: range | list[int] | np.ndarray, varied_fraction: float = 0.5
) -> SceneBatch:
    """Scenes of the encoder pre-training set: each is a `PRETRAINING_STYLE` scene with probability
    `varied_fraction`, else a task-style one. Drawn from streams of their own, disjoint from every task split of
    every seed, so pre-training never sees a task's validation or test image."""
    if split not in _PRETRAINING_SPLIT_CODES:
        raise ValueError(f"unknown pre-training split {split!r}; choose one of {list(_PRETRAINING_SPLIT_CODES)}")
    if not 0.0 <= varied_fraction <= 1.0:
        raise ValueError(f"varied_fraction must be in [0, 1], got {varied_fraction}")
    code = _PRETRAINING_SPLIT_CODES[split]
    scenes = []
    for i in indices:
        rng = np.random.default_rng([int(seed), code, int(i)])
        style = PRETRAINING_STYLE if rng.random() < varied_fraction else DEFAULT_STYLE
        scenes.append(sample_scene(rng, style))
    return SceneBatch.stack(scenes)


# ----------------------------------------------------------------------------------------------------------------
# Rendering: vectorised ray casting over (active primitives of all scenes) x pixels.
# ----------------------------------------------------------------------------------------------------------------


_TILE = 8  # pixels per tile side for screen-space culling


def _nearest(t: np.ndarray, key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest t per key (a (scene, tile) cell) and pixel, and the row of `t` it came from.

    t: (Q, L) hit distances of Q (primitive, tile) pairs sorted by `key` ((Q,)). Returns (n_keys, L) distances
    (inf where nothing is hit) and (n_keys, L) winning rows (meaningless where the distance is inf).
    """
    best_t = np.full((n_keys, t.shape[1]), np.inf, dtype=np.float32)
    best_q = np.zeros((n_keys, t.shape[1]), dtype=np.int64)
    if t.shape[0] == 0:
        return best_t, best_q
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    mins = np.minimum.reduceat(t, starts, axis=0)
    best_t[key[starts]] = mins
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, t.shape[0]]))
    winner = np.where(t == mins[group], np.arange(t.shape[0])[:, None], -1)
    best_q[key[starts]] = np.maximum.reduceat(winner, starts, axis=0)
    return best_t, best_q


def _tile_pairs(
    corners: np.ndarray, sid: np.ndarray, scenes: SceneBatch, fpix: np.ndarray, grid: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(primitive, tile) pairs whose tile may see the primitive, from its projected bounding-box corners.

    corners: (P, 8, 3) world corners of each primitive's bounding box. Returns the primitive index and the
    (scene, tile) key of each pair, sorted by key. A primitive with a corner behind the camera keeps every tile.
    """
    height, width, ty, tx = grid
    rel = corners - scenes.cam_pos[sid][:, None, :]
    cam = np.einsum("pcj,pjk->pck", rel, scenes.cam_rot[sid])  # (P, 8, 3): R^T (X - o)
    z = cam[..., 2]
    behind = (z < 0.05).any(axis=1)
    zs = np.where(z < 0.05, 1.0, z)
    u = cam[..., 0] / zs * fpix[sid][:, None] + width / 2
    v = cam[..., 1] / zs * fpix[sid][:, None] + height / 2
    # Pixel j has its centre at j + 0.5; one pixel of margin absorbs rounding.
    x0 = np.where(behind, 0, np.floor((u.min(1) - 1.5) / _TILE)).clip(0, tx)
    x1 = np.where(behind, tx - 1, np.floor((u.max(1) + 0.5) / _TILE)).clip(-1, tx - 1)
    y0 = np.where(behind, 0, np.floor((v.min(1) - 1.5) / _TILE)).clip(0, ty)
    y1 = np.where(behind, ty - 1, np.floor((v.max(1) + 0.5) / _TILE)).clip(-1, ty - 1)
    rows, cols = np.arange(ty), np.arange(tx)
    mask = ((rows >= y0[:, None]) & (rows <= y1[:, None]))[:, :, None] & (
        (cols >= x0[:, None]) & (cols <= x1[:, None])
    )[:, None, :]
    prim, r, c = np.nonzero(mask)
    key = sid[prim] * (ty * tx) + r * tx + c
    order = np.argsort(key, kind="stable")
    return prim[order], key[order]


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    sel = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=bool)  # (8, 3)
    return np.where(sel[None], hi[:, None, :], lo[:, None, :])


def _sobel(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives of (B, H, W) images with replicated borders."""
    p = np.pad(lum, ((0, 0), (1, 1), (1, 1)), mode="edge")
    sv = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]  # vertical smoothing
    sh = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]
    return sv[:, :, 2:] - sv[:, :, :-2], sh[:, 2:, :] - sh[:, :-2, :]


def _box3(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    s = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (s[:, :, :-2] + s[:, :, 1:-1] + s[:, :, 2:]) * np.float32(1 / 9)


def image_targets(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges and keypoints of (B, 3, H, W) images, both (B, 1, H, W) in [0, 1].

    Edges: Sobel gradient magnitude of the luminance / 4, clipped (a step of contrast c gives about c), like
    Taskonomy's texture edges. Keypoints: Harris corner response (k = 0.05, 3x3 windows), smoothed and
    square-root compressed, like Taskonomy's 2D keypoint heat-maps.
    """
    lum = np.float32(0.299) * image[:, 0] + np.float32(0.587) * image[:, 1] + np.float32(0.114) * image[:, 2]
    gx, gy = _sobel(lum)
    edges = np.clip(np.sqrt(gx * gx + gy * gy) * np.float32(0.25), 0.0, 1.0)
    gx, gy = gx * np.float32(0.125), gy * np.float32(0.125)  # unit-gain derivatives
    sxx, syy, sxy = _box3(gx * gx), _box3(gy * gy), _box3(gx * gy)
    response = _box3(np.maximum(sxx * syy - sxy * sxy - np.float32(0.05) * (sxx + syy) ** 2, 0.0))
    keypoints = np.clip(np.sqrt(response) * np.float32(60.0), 0.0, 1.0)
    return edges[:, None].astype(np.float32), keypoints[:, None].astype(np.float32)


def render(scenes: SceneBatch, image_size: int | tuple[int, int] = 64, *, return_ids: bool = False) -> dict:
    """Ray-cast a batch of scenes; every task's label as batched numpy arrays.

    Keys: ``image`` (B, 3, H, W) in [0, 1]; ``segmentation`` (B, H, W) int64; ``depth`` (B, 1, H, W) z-buffer in
    metres; ``normals`` (B, 3, H, W) unit vectors in the camera frame; ``edges``, ``keypoints`` (B, 1, H, W) in
    [0, 1]; ``reconstruction`` (a copy of the image). With ``return_ids`` also ``face_id`` (B, H, W): one id per
    planar face or curved surface, so tests can find pixels whose neighbourhood lies on one smooth surface.

    Pixels are processed in 8x8 tiles; a primitive is only intersected with the rays of the tiles its projected
    bounding box touches, which cuts the work about fivefold without changing any result.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    b, f32 = scenes.batch_size, np.float32
    ty, tx = -(-height // _TILE), -(-width // _TILE)
    n_tiles, tl = ty * tx, _TILE * _TILE
    n = n_tiles * tl  # padded pixel count, tile-major order
    grid = (height, width, ty, tx)
    # Pixel coordinates in tile-major order: (tile row, tile col, row in tile, col in tile).
    tr, tc, ir, ic = np.meshgrid(np.arange(ty), np.arange(tx), np.arange(_TILE), np.arange(_TILE), indexing="ij")
    ii = (tr * _TILE + ir).reshape(-1).astype(f32) + f32(0.5)
    jj = (tc * _TILE + ic).reshape(-1).astype(f32) + f32(0.5)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Primary rays d = R @ (x / f, y / f, 1): the ray parameter t is then the z-buffer depth.
        fpix = scenes.focal.astype(f32) * f32(width)
        xc = (jj[None] - f32(width / 2)) / fpix[:, None]
        yc = (ii[None] - f32(height / 2)) / fpix[:, None]
        rot = scenes.cam_rot.astype(f32)
        d = [rot[:, k, 0, None] * xc + rot[:, k, 1, None] * yc + rot[:, k, 2, None] for k in range(3)]
        d = [np.where(np.abs(c) < 1e-7, f32(1e-7), c) for c in d]  # no exact zeros: slabs divide by them
        inv = [f32(1.0) / c for c in d]
        o = scenes.cam_pos.astype(f32)
        dt = [c.reshape(b * n_tiles, tl) for c in d]  # per (scene, tile) rows
        it = [c.reshape(b * n_tiles, tl) for c in inv]

        # Room: the camera is inside an axis-aligned box; the exit face is the nearest of three planes.
        t_ax = [
            (np.where(d[k] > 0, scenes.room_hi[:, k, None], scenes.room_lo[:, k, None]) - o[:, k, None]) * inv[k]
            for k in range(3)
        ]
        t = np.minimum(np.minimum(t_ax[0], t_ax[1]), t_ax[2])
        axis = np.where(t_ax[0] == t, 0, np.where(t_ax[1] == t, 1, 2))
        surf = 2 * axis + (np.choose(axis, d) > 0)

        # Boxes (slab test), on the tiles each box may cover.
        sid, slot = np.nonzero(scenes.box_active)
        lo_w, hi_w = scenes.box_lo[sid, slot], scenes.box_hi[sid, slot]
        prim, key = _tile_pairs(_box_corners(lo_w, hi_w), sid, scenes, fpix, grid)
        lo, hi = (lo_w - o[sid])[prim], (hi_w - o[sid])[prim]  # (Q, 3)
        tnear, tfar = np.full((len(prim), tl), -np.inf, f32), np.full((len(prim), tl), np.inf, f32)
        for k in range(3):
            ik = it[k][key]
            t1, t2 = lo[:, k, None] * ik, hi[:, k, None] * ik
            np.maximum(tnear, np.minimum(t1, t2), out=tnear)
            np.minimum(tfar, np.maximum(t1, t2), out=tfar)
        t_q = np.where((tnear <= tfar) & (tnear > _EPS), tnear, np.inf)
        t_best, q_best = _nearest(t_q, key, b * n_tiles)
        closer = t_best.reshape(b, n) < t
        t = np.where(closer, t_best.reshape(b, n), t)
        surf = np.where(closer, _SURFACE_OFFSET["box"] + slot[prim[q_best]].reshape(b, n) if len(prim) else 0, surf)

        # Spheres.
        sid, slot = np.nonzero(scenes.sph_active)
        center, radius = scenes.sph_center[sid, slot], scenes.sph_radius[sid, slot]
        prim, key = _tile_pairs(
            _box_corners(center - radius[:, None], center + radius[:, None]), sid, scenes, fpix, grid
        )
        oc = (o[sid] - center)[prim]  # (Q, 3)
        dq = [c[key] for c in dt]
        bq = dq[0] * oc[:, 0, None] + dq[1] * oc[:, 1, None] + dq[2] * oc[:, 2, None]
        aq = dq[0] * dq[0] + dq[1] * dq[1] + dq[2] * dq[2]
        disc = bq * bq - aq * ((oc * oc).sum(1) - radius[prim] ** 2)[:, None]
        t_q = (-bq - np.sqrt(np.maximum(disc, 0))) / aq
        t_q = np.where((disc > 0) & (t_q > _EPS), t_q, np.inf)
        t_best, q_best = _nearest(t_q, key, b * n_tiles)
        closer = t_best.reshape(b, n) < t
        t = np.where(closer, t_best.reshape(b, n), t)
        surf = np.where(closer, _SURFACE_OFFSET["sph"] + slot[prim[q_best]].reshape(b, n) if len(prim) else 0, surf)

        # Vertical cylinders: side and top cap (the bottom rests on the floor).
        sid, slot = np.nonzero(scenes.cyl_active)
        cx, cz, r = scenes.cyl_center[sid, slot, 0], scenes.cyl_center[sid, slot, 1], scenes.cyl_radius[sid, slot]
        y0, y1 = scenes.cyl_y0[sid, slot], scenes.cyl_y1[sid, slot]
        prim, key = _tile_pairs(
            _box_corners(np.stack([cx - r, y0, cz - r], 1), np.stack([cx + r, y1, cz + r], 1)), sid, scenes, fpix, grid
        )
        ocx, ocz = (o[sid, 0] - cx)[prim, None], (o[sid, 2] - cz)[prim, None]
        r2, y0, y1, oy = (r**2)[prim, None], y0[prim, None], y1[prim, None], o[sid, 1][prim, None]
        dx, dy, dz = dt[0][key], dt[1][key], dt[2][key]
        aq = dx * dx + dz * dz
        bq = dx * ocx + dz * ocz
        disc = bq * bq - aq * (ocx * ocx + ocz * ocz - r2)
        t_side = (-bq - np.sqrt(np.maximum(disc, 0))) / aq
        y_side = oy + t_side * dy
        t_side = np.where((disc > 0) & (t_side > _EPS) & (y_side >= y0) & (y_side <= y1), t_side, np.inf)
        t_cap = (y1 - oy) * it[1][key]
        px, pz = ocx + t_cap * dx, ocz + t_cap * dz
        t_cap = np.where((t_cap > _EPS) & (px * px + pz * pz <= r2), t_cap, np.inf)
        t_best, q_best = _nearest(np.minimum(t_side, t_cap), key, b * n_tiles)
        closer = t_best.reshape(b, n) < t
        t = np.where(closer, t_best.reshape(b, n), t).astype(f32)
        if len(prim):
            surf = np.where(closer, _SURFACE_OFFSET["cyl"] + slot[prim[q_best]].reshape(b, n), surf)
            cap_q = (t_cap <= t_side).reshape(-1)[(q_best * tl + np.arange(tl)).reshape(-1)].reshape(b, n)
            is_cap = closer & cap_q
        else:
            is_cap = np.zeros((b, n), dtype=bool)
        p = [o[:, k, None] + t * d[k] for k in range(3)]

        # One gather of every per-surface attribute: (C, B, N).
        table = np.ascontiguousarray(scenes.surfaces.reshape(-1, _N_COLS).T)
        attr = np.take(table, (surf + np.arange(b)[:, None] * N_SURFACES).reshape(-1), axis=1).reshape(-1, b, n)

        # World normals. Boxes and the room: the axis where the hit point touches the box (|q| = 1), outward for
        # boxes, inward for the room. Spheres: q. Cylinders: radial q, or +y on the cap.
        shape = attr[_C_SHAPE]
        q = [(p[k] - attr[_C_CENTER + k]) / attr[_C_HALF + k] for k in range(3)]
        aq_ = [np.abs(c) for c in q]
        ax0 = (aq_[0] >= aq_[1]) & (aq_[0] >= aq_[2])
        face_axis = np.where(ax0, 0, np.where(aq_[1] >= aq_[2], 1, 2))
        boxy = shape <= _SHAPE_BOX
        sign = np.where(shape == _SHAPE_ROOM, f32(-1.0), f32(1.0))
        cyl = shape == _SHAPE_CYLINDER
        normal = []
        for k in range(3):
            n_k = np.where(boxy, np.where(face_axis == k, np.sign(q[k]) * sign, f32(0.0)), q[k])
            if k == 1:
                n_k = np.where(is_cap, f32(1.0), np.where(cyl, f32(0.0), n_k))
            else:
                n_k = np.where(is_cap, f32(0.0), n_k)
            normal.append(n_k)
        norm = np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2)
        normal = [c / norm for c in normal]
        # Camera-frame normals n_cam = R^T n_world, facing the camera.
        n_cam = [sum(rot[:, j, k, None] * normal[j] for j in range(3)) for k in range(3)]
        flip = np.where(xc * n_cam[0] + yc * n_cam[1] + n_cam[2] > 0, f32(-1.0), f32(1.0))
        n_cam = [c * flip for c in n_cam]

        # Procedural texture in the plane of the dominant normal axis (world coordinates).
        an = [np.abs(c) for c in normal]
        dom_y = (an[1] >= an[0]) & (an[1] >= an[2])
        dom_x = ~dom_y & (an[0] >= an[2])
        su, sv = np.where(dom_x, p[2], p[0]), np.where(dom_y, p[2], p[1])
        cs, sn = np.cos(attr[_C_ANGLE]), np.sin(attr[_C_ANGLE])
        freq, phase, mtype = attr[_C_FREQ], attr[_C_PHASE], attr[_C_TYPE]
        uu, vv = (su * cs + sv * sn) * freq, (sv * cs - su * sn) * freq
        wave = np.sin(f32(2 * math.pi) * uu + phase)
        stripes = (wave > 0).astype(f32)
        checks = (np.floor(uu) + np.floor(vv)) % 2
        waves = f32(0.5) + f32(0.25) * (wave + np.sin(f32(2 * math.pi * 0.7) * vv - phase))
        pattern = np.where(mtype == 1, stripes, np.where(mtype == 2, checks, np.where(mtype == 3, waves, f32(0.0))))
        if (mtype >= 4).any():  # the pre-training style's extra textures: plaid, dots, rings
            plaid = f32(0.5) + f32(0.5) * wave * np.sin(f32(2 * math.pi * 1.7) * vv + f32(2.0) * phase)
            dots = (np.sin(f32(2 * math.pi) * uu) * np.sin(f32(2 * math.pi) * vv) > 0.5).astype(f32)
            rings = (np.sin(f32(2 * math.pi) * np.sqrt(uu * uu + vv * vv) + phase) > 0).astype(f32)
            extra = np.where(mtype == 4, plaid, np.where(mtype == 5, dots, rings))
            pattern = np.where(mtype >= 4, extra, pattern)

        # Lambertian shading: ambient + directional light + point light with quadratic fall-off.
        sun = np.maximum(
            -(
                normal[0] * scenes.sun_dir[:, 0, None]
                + normal[1] * scenes.sun_dir[:, 1, None]
                + normal[2] * scenes.sun_dir[:, 2, None]
            ),
            0.0,
        )
        lv = [scenes.lamp_pos[:, k, None] - p[k] for k in range(3)]
        ld2 = lv[0] * lv[0] + lv[1] * lv[1] + lv[2] * lv[2]
        lamp = np.maximum(normal[0] * lv[0] + normal[1] * lv[1] + normal[2] * lv[2], 0.0) / (
            np.sqrt(ld2) * (1.0 + scenes.lamp_falloff[:, None] * ld2)
        )
        image = np.empty((b, 3, n), dtype=f32)
        for c in range(3):
            albedo = attr[_C_A + c] + (attr[_C_B + c] - attr[_C_A + c]) * pattern
            shade = scenes.ambient[:, c, None] + sun * scenes.sun_col[:, c, None] + lamp * scenes.lamp_col[:, c, None]
            np.clip(albedo * shade, 0.0, 1.0, out=image[:, c])

    def raster(x: np.ndarray, dtype: Any = f32) -> np.ndarray:
        """(B, C, N) tile-major -> (B, C, H, W) raster order, cropped to the image."""
        x = x.reshape(b, -1, ty, tx, _TILE, _TILE).transpose(0, 1, 2, 4, 3, 5)
        return np.ascontiguousarray(x.reshape(b, -1, ty * _TILE, tx * _TILE)[:, :, :height, :width], dtype=dtype)

    image = raster(image)
    edges, keypoints = image_targets(image)
    out = {
        "image": image,
        "segmentation": raster(attr[_C_CLASS][:, None], np.int64)[:, 0],
        "depth": raster(t[:, None]),
        "normals": raster(np.stack(n_cam, axis=1)),
        "edges": edges,
        "keypoints": keypoints,
        "reconstruction": image.copy(),
    }
    if return_ids:
        q_axis = np.choose(face_axis, q)
        sub = np.where(boxy, 2 * face_axis + (q_axis > 0), np.where(is_cap, 6, 7))
        out["face_id"] = raster((surf * 8 + sub)[:, None], np.int64)[:, 0]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Presets, splits and the cached DatasetDict.
# ----------------------------------------------------------------------------------------------------------------


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if not (16 <= height <= 1024 and 16 <= width <= 1024):
        raise ValueError(f"image_size must be between 16 and 1024 pixels per side, got {image_size!r}")
    return int(height), int(width)


def generate_batches(
    preset: str,
    split: str,
    num_samples: int,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    *,
    start: int = 0,
    batch_size: int = 32,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield batches (numpy, schema of the preset: ``image`` + its tasks) of samples start .. start + num_samples.

    The generator behind `load_benchmark`; use it directly to stream samples without `datasets`.
    """
    tasks = BENCHMARK_PRESETS[_check_preset(preset)]
    hw = _image_hw(image_size)
    for lo in range(start, start + num_samples, batch_size):
        hi = min(lo + batch_size, start + num_samples)
        out = render(sample_scenes(seed, split, range(lo, hi)), hw)
        yield {"image": out["image"], **{task: out[task] for task in tasks}}


def _check_preset(preset: str) -> str:
    if preset not in BENCHMARK_PRESETS:
        raise ValueError(f"unknown benchmark preset {preset!r}; choose one of {sorted(BENCHMARK_PRESETS)}")
    return preset


def _check_sizes(
    sizes: Mapping[str, int] | None, defaults: Mapping[str, int] = DEFAULT_SIZES, splits: tuple[str, ...] = SPLITS
) -> dict[str, int]:
    sizes = dict(defaults if sizes is None else sizes)
    unknown = sorted(set(sizes) - set(splits))
    if unknown or not sizes:
        raise ValueError(f"sizes must map some of the splits {list(splits)} to sample counts, got {sizes!r}")
    for split, count in sizes.items():
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"sizes[{split!r}] must be a positive integer, got {count!r}")
    return {split: int(sizes[split]) for split in splits if split in sizes}


def load_benchmark(
    preset: str = "nyuv2",
    image_size: int | tuple[int, int] = 64,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_cache: bool = True,
):
    """The embedded benchmark as a `datasets.DatasetDict` (train / validation / test), formatted as torch tensors.

    Args:
        preset: ``"nyuv2"`` (segmentation, depth, normals) or ``"taskonomy"`` (reconstruction, depth, normals,
            keypoints, edges).
        image_size: pixels per side (int) or (height, width); 64 by default, 64-96 is the intended range.
        sizes: samples per split, default ``{"train": 2000, "validation": 200, "test": 500}``; only the splits
            given are built. Sample i of a split is the same whatever the sizes are.
        seed: benchmark seed; splits draw from disjoint streams ``(seed, split, index)``.
        cache_dir: where built benchmarks are kept (``save_to_disk`` folders), default ``$HF_HOME/hf_simo``.
            Building the same preset/size/sizes/seed again loads the cached copy.
        use_cache: False builds in memory and touches no disk.

    Returns a DatasetDict whose examples follow the shared schema (``image`` float32 (3, H, W) in [0, 1], one
    column per task); `get_task_specs(dataset)` returns the task specs stored in its metadata.
    """
    preset = _check_preset(preset)
    height, width = _image_hw(image_size)
    sizes = _check_sizes(sizes)
    return _cached_dataset(
        preset,
        {"preset": preset, "image_size": [height, width], "sizes": sizes, "seed": int(seed)},
        benchmark_task_specs(preset),
        {split: generate_batches(preset, split, count, (height, width), seed) for split, count in sizes.items()},
        cache_dir,
        use_cache,
        class_names=list(BENCHMARK_CLASS_NAMES),
    )


def generate_pretraining_batches(
    split: str,
    num_samples: int,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    *,
    start: int = 0,
    batch_size: int = 32,
    varied_fraction: float = 0.5,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{"image": (B, 3, H, W)}`` batches of the encoder pre-training set (see `load_pretraining_images`)."""
    hw = _image_hw(image_size)
    for lo in range(start, start + num_samples, batch_size):
        hi = min(lo + batch_size, start + num_samples)
        scenes = sample_pretraining_scenes(seed, split, range(lo, hi), varied_fraction)
        yield {"image": render(scenes, hw)["image"]}


def load_pretraining_images(
    image_size: int | tuple[int, int] = 64,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    *,
    varied_fraction: float = 0.5,
    use_cache: bool = True,
):
    """The encoder pre-training set: a `DatasetDict` (train / validation) of images only, larger and more varied
    than the tasks' training data.

    Half the scenes (`varied_fraction`) are drawn from `PRETRAINING_STYLE` (larger and smaller rooms, low and tilted
    cameras, wide and narrow lenses, up to 11 objects of 10 kinds at 0.5-1.6x size, any colour, 7 textures, dim to
    bright lights), the rest from the task benchmark's own distribution. Default sizes: 50,000 train / 1,000
    validation images. Streams are disjoint from every task split, so no task image is seen in pre-training.
    Cached like `load_benchmark`.
    """
    height, width = _image_hw(image_size)
    sizes = _check_sizes(sizes, PRETRAINING_SIZES, PRETRAINING_SPLITS)
    batches = {
        split: generate_pretraining_batches(split, count, (height, width), seed, varied_fraction=varied_fraction)
        for split, count in sizes.items()
    }
    key = {"image_size": [height, width], "sizes": sizes, "seed": int(seed), "varied_fraction": varied_fraction}
    return _cached_dataset("pretraining", key, {}, batches, cache_dir, use_cache)


def _cached_dataset(
    tag: str,
    key: dict[str, Any],
    specs: dict[str, dict[str, Any]],
    batches: dict[str, Iterator[dict[str, np.ndarray]]],
    cache_dir: str | os.PathLike | None,
    use_cache: bool,
    **description: Any,
):
    """Load the `DatasetDict` cached under `key`, or build it from `batches` (split -> generator) and cache it."""
    from datasets import DatasetDict, load_from_disk

    height, width = key["image_size"]
    digest = hashlib.sha256(json.dumps({**key, "version": GENERATOR_VERSION}, sort_keys=True).encode()).hexdigest()
    name = f"{tag}-{height}x{width}-seed{key['seed']}-v{GENERATOR_VERSION}-{digest[:12]}"
    folder = Path(cache_dir).expanduser() / name if cache_dir is not None else None
    if use_cache:
        from ._common import default_cache_root

        folder = folder or default_cache_root() / "benchmark" / name
        if folder.is_dir():
            try:
                return load_from_disk(str(folder)).with_format("torch")
            except Exception as err:  # an unreadable cache is rebuilt, not fatal
                raise RuntimeError(
                    f"cached benchmark {folder} cannot be read ({err}); delete that folder to rebuild it"
                ) from err

    from ._common import dataset_from_batches, example_features, save_atomically

    features = example_features(height, width, specs)
    meta = make_description(
        "benchmark",
        specs,
        **{k: v for k, v in key.items() if k != "sizes"},
        generator_version=GENERATOR_VERSION,
        **description,
    )
    dd = DatasetDict(
        {
            split: dataset_from_batches(
                split_batches, features, meta, fingerprint=f"hf_simo-{digest[:16]}-{split}", split=split
            )
            for split, split_batches in batches.items()
        }
    )
    if not use_cache:
        return dd.with_format("torch")
    save_atomically(dd, folder)
    return load_from_disk(str(folder)).with_format("torch")
