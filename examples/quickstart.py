"""The library API on the bundled data: fit the law, predict a planned run, recommend.

    python examples/quickstart.py

Everything ``cptopt fit``, ``predict`` and ``recommend`` do on the command line.
"""

from pathlib import Path

from cptopt import Schedule, fit, predict, recommend

HERE = Path(__file__).resolve().parent

# Fit both validation sets to the five unannealed pilots (law variant chosen by pilot CV).
law = fit(HERE / "pilots" / "unannealed.yaml")
print(f"law: {law.form}, {law.annealing_description}")

# Predict a planned run: WSD, 1,000 steps, peak LR 1e-3, 25 % replay.
schedule = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_fraction=0.02)
prediction = predict(law, schedule, replay_ratio=0.25)
domain = prediction.domain
print(f"domain loss: {domain.final:.4f} ({domain.final_lower:.4f}..{domain.final_upper:.4f})")

# Search peak LR, replay ratio and schedule shape for 0.3 * L_general + 0.7 * L_domain.
result = recommend(law, "0.3,0.7")
best = result.recommended
print(f"recommended: {best.setting.describe()}; objective {best.objective:.4f}")
for baseline in result.baselines:
    print(f"  vs {baseline.label}: objective {baseline.objective:.4f}")
