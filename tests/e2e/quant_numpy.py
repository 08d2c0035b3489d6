"""quant_numpy.py: an independent NumPy reference for etch's integer
requantize arithmetic (docs/quantization.md), run by test_quant_numpy.sh.

Reads the .npz that tests/unit/test_quant writes under ETCH_QUANT_DUMP (a
random qmatmul u8 x i8 -> u8 with per-channel multipliers, and a per-axis
quantize f32 -> i8 with half its values on exact ties; etch's results there
come from the eager executor after the emitted C was checked bit-identical to
it) and recomputes everything in vectorized int64 / float64 NumPy, written
from the gemmlowp/TFLite definitions rather than from etch's code:
  - QuantizeMultiplier: frexp, round half away from zero, carry to 2^31;
  - SaturatingRoundingDoublingHighMul and RoundingDivideByPOT;
  - quantize: rint (half to even) of x / scale in float64, + zero point, clip.
Every value must match exactly. Usage: quant_numpy.py FILE.npz"""
import sys

import numpy as np

d = np.load(sys.argv[1])
fails = []


def check(name, got, want):
    got, want = np.asarray(got).astype(np.int64), np.asarray(want).astype(np.int64)
    bad = np.flatnonzero(got.ravel() != want.ravel())
    if bad.size:
        i = bad[0]
        fails.append(f"{name}: {bad.size} of {got.size} differ, first at {i}: etch {got.ravel()[i]}, numpy {want.ravel()[i]}")
    else:
        print(f"{name}: {got.size} values identical")


# QuantizeMultiplier
f, e = np.frexp(d["reals"])
q = np.floor(f * 2.0**31 + 0.5).astype(np.int64)  # f > 0: half away from zero
carry = q == 2**31
q[carry] //= 2
e[carry] += 1
check("q31", d["mult"], q)
check("shift", d["shift"], e)

# the int32 accumulator, then MultiplyByQuantizedMultiplier, zero point, clamp
x, w = d["x"].astype(np.int64), d["w"].astype(np.int64)
acc = (x - 131) @ w.T + d["bias"].astype(np.int64)
assert np.all(np.abs(acc) < 2**31), "the test data keeps the accumulator in int32"
shift = d["shift"].astype(np.int64)
left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
a = np.clip(acc << left, -(2**31), 2**31 - 1)
ab = a * d["mult"].astype(np.int64)
nudge = np.where(ab >= 0, 2**30, 1 - 2**30)
hi_int = (ab + nudge - np.fmod(ab + nudge, 2**31)) // 2**31  # C's division, truncating toward zero
mask = (np.int64(1) << right) - 1
rem = hi_int & mask
threshold = (mask >> 1) + (hi_int < 0)
scaled = (hi_int >> right) + (rem > threshold)
check("qmatmul", d["y"], np.clip(scaled + 7, 7, 250))
print(f"qmatmul: {int(np.sum(d['y'] == 7))} at the low clamp, {int(np.sum(d['y'] == 250))} at the high one")
assert np.any(d["y"] == 7) and np.any(d["y"] == 250), "the data saturates both ways"

# per-axis quantize along axis 0
xf = d["xf"].astype(np.float64)
s, z = d["scale"].astype(np.float64)[:, None], d["zero_point"].astype(np.int64)[:, None]
check("quantize", d["q"], np.clip(np.rint(xf / s) + z, -128, 127))
ties = np.abs(xf / s - np.floor(xf / s) - 0.5) == 0
print(f"quantize: {int(ties.sum())} exact ties among them")
assert ties.sum() > 50, "the data has ties"

if fails:
    print("\n".join(fails))
    sys.exit(1)
