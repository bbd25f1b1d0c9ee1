"""Surface appearance: the ground texture baked from the layout, and each class's albedo."""
import numpy as np

from .objects import CYCLES, VEHICLES


class GroundTexture:
    """The ground (global z = 0) baked into a top-down RGB texture from the layout."""

    def __init__(self, layout: dict, rng: np.random.Generator, res: float = 0.15,
                 margin: float = 40.0, max_texels: int = 5_000_000) -> None:
        import cv2
        pts = np.concatenate([np.concatenate(v) for v in layout.values() if len(v)])
        lo, hi = pts.min(0) - margin, pts.max(0) + margin
        res = max(res, float(np.sqrt((hi - lo).prod() / max_texels)))
        self.origin, self.res = lo, res
        w, h = (np.ceil((hi - lo) / res)).astype(int) + 1
        self.grass = np.array([0.33, 0.40, 0.22])
        tex = np.empty((h, w, 3), np.float32)
        tex[:] = self.grass
        low = cv2.resize(rng.normal(0, 1, (max(h // 40, 2), max(w // 40, 2))).astype(np.float32),
                         (w, h), interpolation=cv2.INTER_LINEAR)

        def fill(polys, colour) -> None:
            for p in polys:
                cv2.fillPoly(tex, [self._px(p)], colour, lineType=cv2.LINE_AA, shift=2)

        fill(layout['walkway'], (0.62, 0.61, 0.58))
        fill(layout['drivable_area'], (0.27, 0.27, 0.29))
        tex += low[..., None] * 0.035 + 0.025 * rng.standard_normal((h, w, 1), dtype=np.float32)
        for line in layout['lane_divider']:  # dashed white: 3 m dash, 6 m gap
            seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            on = (arc % 9.0) < 3.0
            for i in range(len(line) - 1):
                if on[i]:
                    self._line(tex, line[i:i + 2], (0.9, 0.9, 0.88), 0.15)
        for line in layout['road_divider']:  # solid yellow
            self._line(tex, line, (0.85, 0.7, 0.15), 0.2)
        for poly in layout['ped_crossing']:  # zebra: bars along the crossing's long side
            a, b, c = poly[0], poly[1], poly[2]
            across = c - b  # rows of rectangle: along the length, then across the width
            n_bars = int(np.linalg.norm(across) / 1.0)
            for i in range(n_bars):
                t0, t1 = i / n_bars, (i + 0.5) / n_bars
                bar = np.array([a + across * t0, b + across * t0, b + across * t1,
                                a + across * t1])
                cv2.fillPoly(tex, [self._px(bar)], (0.92, 0.92, 0.9), lineType=cv2.LINE_AA,
                             shift=2)
        self.tex = np.clip(tex * 255, 0, 255).astype(np.uint8)

    def _px(self, pts: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(pts) - self.origin) / self.res * 4).astype(np.int32)

    def _line(self, tex: np.ndarray, pts: np.ndarray, colour, width: float) -> None:
        import cv2
        cv2.polylines(tex, [self._px(pts)], False, colour,
                      thickness=max(1, int(round(width / self.res))), lineType=cv2.LINE_AA,
                      shift=2)

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(N,) global xy -> (N, 3) float colours (nearest texel; grass outside)."""
        col = np.round((x - self.origin[0]) / self.res).astype(np.int64)
        row = np.round((y - self.origin[1]) / self.res).astype(np.int64)
        h, w = self.tex.shape[:2]
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        out = np.empty((len(x), 3), np.float32)
        out[:] = self.grass
        out[inside] = self.tex[row[inside], col[inside]] / 255.0
        return out


def surface_albedo(name: str, local: np.ndarray, axis: np.ndarray, sign: np.ndarray,
            half: np.ndarray, colour: np.ndarray, moving: bool) -> np.ndarray:
    """Per-class surface appearance: (K, 3) albedo at hit points in the box frame."""
    k = len(local)
    out = np.broadcast_to(colour, (k, 3)).astype(np.float32).copy()
    hz = (local[:, 2] + half[2]) / (2 * half[2])  # 0 at the bottom, 1 at the top
    u, v = local[:, 0], local[:, 1]
    side = axis == 1
    front = (axis == 0) & (sign > 0)
    rear = (axis == 0) & (sign < 0)
    vertical = axis != 2
    dark = np.array([0.08, 0.09, 0.12], np.float32)
    if name == 'car':
        out[vertical & (hz > 0.6) & (hz < 0.92)] = dark  # windows
        out[(hz < 0.18) & vertical] *= 0.35  # wheels / sills
    elif name == 'truck':
        cab = u > half[0] - 0.45 * half[0]
        out[cab] = [0.86, 0.86, 0.82]
        out[cab & vertical & (hz > 0.6) & (hz < 0.85)] = dark
        out[(hz < 0.15) & vertical] *= 0.3
    elif name == 'construction_vehicle':
        out[side & (((u + local[:, 2]) % 1.2) < 0.4)] = [0.1, 0.1, 0.1]  # hazard stripes
        out[vertical & (hz > 0.7) & (u > 0)] = dark
    elif name == 'bus':
        out[vertical & (hz > 0.5) & (hz < 0.85)] = dark
        out[(hz < 0.12) & vertical] *= 0.3
    elif name == 'trailer':
        out[side & ((u % 0.8) < 0.12)] *= 0.6  # ribs
        out[(hz < 0.12) & vertical] *= 0.3
    elif name == 'barrier':
        out[(np.floor((v + half[1]) / 0.42) % 2) == 1] = [0.95, 0.95, 0.95]
    elif name == 'traffic_cone':
        out[(hz > 0.45) & (hz < 0.68)] = [0.96, 0.96, 0.96]
        out[hz < 0.08] = [0.1, 0.1, 0.1]
    elif name == 'pedestrian':
        out[hz < 0.5] = [0.12, 0.14, 0.3]  # trousers
        out[hz > 0.86] = [0.85, 0.64, 0.5]  # head
    elif name in CYCLES:
        out[hz < 0.35] = [0.1, 0.1, 0.1]  # wheels
        if moving:  # the rider
            out[hz > 0.6] = [0.9, 0.55, 0.2]
    if name in VEHICLES or name in CYCLES:
        lamp_h = (hz > 0.3) & (hz < 0.45)
        lamp_v = (np.abs(v) > 0.55 * half[1]) & (np.abs(v) < 0.9 * half[1])
        if name in CYCLES:
            lamp_v = np.abs(v) < 0.4 * half[1]
        out[front & lamp_h & lamp_v] = [1.0, 1.0, 0.85]
        out[rear & lamp_h & lamp_v] = [0.9, 0.05, 0.05]
    return out
