#!/usr/bin/env python3
"""Reference values for spark-lora's privacy accountant, from an independent implementation of the same analysis.

spark-lora's accountant (privacy/SampledGaussianRdp) evaluates the Rényi DP of the sampled Gaussian mechanism with the
series of Mironov, Talwar and Zhang (2019), as Opacus's RDP accountant does. This script does not use that series: it
integrates the definition numerically, in 60-digit arithmetic (mpmath),

    A_alpha = integral of mu0(z) * ((1 - q) + q * mu1(z) / mu0(z)) ** alpha dz,  mu0 = N(0, s^2), mu1 = N(1, s^2)
    RDP(alpha) = log(A_alpha) / (alpha - 1)

for integer and fractional orders, then converts to (epsilon, delta) with the conversion Opacus uses
(get_privacy_spent: eps = rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha), minimised over
Opacus's default orders 1.1, 1.2, ..., 10.9, 12, ..., 63).

Usage: python3 bench/reference/rdp_reference.py > pipeline/src/test/resources/privacy/rdp_reference.json
"""
import json
import math

import mpmath as mp

mp.mp.dps = 60
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def rdp_sgm(q, sigma, alpha):
    if q == 0:
        return 0.0
    if q == 1:
        return alpha / (2 * sigma ** 2)
    q, s, a = mp.mpf(q), mp.mpf(sigma), mp.mpf(alpha)

    def integrand(z):
        mu0 = mp.npdf(z, 0, s)
        ratio = mp.e ** ((2 * z - 1) / (2 * s ** 2))
        return mu0 * ((1 - q) + q * ratio) ** a

    # the mass sits around 0 and, for large orders, shifts right; split the line so quad sees the peaks
    peak = float(min(alpha, 200)) * 1.0
    pts = [-mp.inf, -20 * s, -5 * s, 0, 1, 5 * s, peak, peak + 20 * s, mp.inf]
    pts = sorted(set(pts), key=lambda v: float(v))
    total = mp.quad(integrand, pts)
    return float(mp.log(total) / (a - 1))


def epsilon(q, sigma, steps, delta):
    best = (math.inf, None)
    for a in ORDERS:
        r = rdp_sgm(q, sigma, a) * steps
        eps = r - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
        if eps < best[0]:
            best = (eps, a)
    return best


def main():
    rdp_cases = [(0.01, 1.1, 2), (0.01, 1.1, 2.5), (0.01, 1.1, 32), (0.004, 0.8, 5.5), (0.1, 2.0, 7),
                 (0.1, 2.0, 1.5), (0.5, 1.0, 3), (0.5, 1.0, 12.25), (1e-3, 0.6, 10), (0.02, 4.0, 40)]
    eps_cases = [(256 / 60000, 1.1, 60 * 60000 // 256, 1e-5), (0.01, 1.0, 1000, 1e-5), (0.05, 2.0, 500, 1e-6),
                 (0.1, 0.8, 100, 1e-5), (0.001, 0.7, 10000, 1e-5), (1.0, 5.0, 10, 1e-5)]
    out = {
        "method": "numerical integration of the Renyi divergence of the sampled Gaussian mixture (mpmath, 60 digits);"
                  " eps by Opacus's conversion over its default orders",
        "rdp": [{"q": q, "sigma": s, "order": a, "rdp": rdp_sgm(q, s, a)} for q, s, a in rdp_cases],
        "epsilon": [],
    }
    for q, s, n, d in eps_cases:
        e, a = epsilon(q, s, n, d)
        out["epsilon"].append({"q": q, "sigma": s, "steps": n, "delta": d, "epsilon": e, "best_order": a})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
