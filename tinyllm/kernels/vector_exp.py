"""exp over the rows of an array in Numba, in loops that LLVM vectorizes.

This Numba has no SVML, so `np.exp` or `math.exp` in a loop is a scalar libm call. `exp_rows` is
a polynomial exp instead: range reduction by ln 2, a Taylor polynomial on |r| <= ln(2)/2, and
2^k written as exponent bits, all arithmetic and selects. Degree 11 in float64 (~1e-14
relative, which float64 needs), degree 7 in float32 (its truncation error is below 1e-8
relative, under float32's rounding of 6e-8). The fused attention (its softmax) and cross-entropy use it.
"""

from __future__ import annotations

import math

from numba import njit

from tinyllm.backend import np

# no "ninf": masked scores are -inf and must compare as such (exp of them is 0)
FASTMATH = {"nnan", "nsz", "contract", "reassoc", "arcp"}

_LN2_HI = 0.693145751953125  # ln 2 with the low mantissa bits zero, so k * _LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-6
# log2(e), ln2 split, 1/2, the underflow cut, then 1/n! for n = 0..11 (|r| <= ln(2)/2: error < 1e-14),
# then 0 and 1; `constants` appends the exponent bias and 2^mantissa_bits of the dtype. Numba
# types a Python literal as float64 (and float32 * int as float64), so every constant of the
# kernels comes from this array, in the kernel's dtype, to keep float32 arithmetic in float32.
_EXP_CONSTANTS = [1.0 / math.log(2.0), _LN2_HI, _LN2_LO, 0.5, -87.0]
_EXP_CONSTANTS += [1.0 / math.factorial(n) for n in range(12)] + [0.0, 1.0]
ZERO, ONE = 17, 18


def constants(dtype):
    """Return the kernel constants as an array of dtype (float32 or float64)."""
    exponent = [127.0, 2.0**23] if np.dtype(dtype).itemsize == 4 else [1023.0, 2.0**52]
    return np.asarray(_EXP_CONSTANTS + exponent, dtype=dtype)


@njit(cache=True, fastmath=FASTMATH)
def exp_rows(s, shift, consts, bits, powers):
    """Set s[r, :] = exp(s[r, :] - shift[r]) for every row r (0 where the argument is below -87).

    bits is an int array of s's item size and powers the same memory viewed as floats: 2^k is
    written as exponent bits (k + bias) << mantissa_bits, by a float multiply that is exact.
    """
    log2e, ln2_hi, ln2_lo, half, low = consts[0], consts[1], consts[2], consts[3], consts[4]
    c0, c1, c2, c3, c4, c5 = consts[5], consts[6], consts[7], consts[8], consts[9], consts[10]
    c6, c7, c8, c9, c10, c11 = consts[11], consts[12], consts[13], consts[14], consts[15], consts[16]
    zero, bias, mantissa = consts[ZERO], consts[19], consts[20]
    n_rows, n_cols = s.shape
    # float32 stops at t^7: the next term is below 1e-8 relative, within float32's rounding (the
    # branch is on the dtype, a constant of the compiled loop)
    wide = s.itemsize == 8
    for r in range(n_rows):
        m = shift[r]
        for j in range(n_cols):
            x = s[r, j] - m
            xc = max(x, low)
            k = np.floor(xc * log2e + half)
            t = xc - k * ln2_hi - k * ln2_lo
            if wide:
                p = c11 * t + c10
                p = p * t + c9
                p = p * t + c8
                p = p * t + c7
            else:
                p = c7
            p = p * t + c6
            p = p * t + c5
            p = p * t + c4
            p = p * t + c3
            p = p * t + c2
            p = p * t + c1
            p = p * t + c0
            s[r, j] = p if x >= low else zero
            bits[j] = (k + bias) * mantissa
        for j in range(n_cols):
            s[r, j] *= powers[j]


def int_like(dtype):
    """Return an empty integer array of dtype's item size (the exponent bits of `exp_rows`)."""
    return np.empty(0, dtype=np.int32 if np.dtype(dtype).itemsize == 4 else np.int64)
