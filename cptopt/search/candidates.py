"""Rank the user's own configurations by the predicted objective, with P(best).

``recommend --candidates FILE`` skips the search: each candidate (a schedule, replay ratio,
checkpoint) is scored by the same :class:`~cptopt.search.evaluate.Evaluator` as the search's
settings, from its own per-step LR, and assessed in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cptopt._io import check_input_file, read_text
from cptopt._validation import load_yaml_mapping, validate
from cptopt.exceptions import InputError
from cptopt.law.areas import Areas
from cptopt.law.fitted import CptLaw
from cptopt.law.uncertainty import jackknife_covariance
from cptopt.search.assess import Scored, assess, broken_constraints
from cptopt.search.evaluate import CheckpointChoice, Evaluator
from cptopt.search.models import (
    Candidate,
    CandidateRanking,
    CandidateScore,
    Constraints,
    parse_weights,
)

#: Draws of the Gaussian used for the probability that a candidate is the best.
PROBABILITY_DRAWS = 20_000


def _unique_names(candidates: list[Candidate], path: Path) -> list[Candidate]:
    names = [candidate.name for candidate in candidates if candidate.name is not None]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{path}: candidate names must be unique, repeated: {', '.join(repeated)}")
    return candidates


def load_candidates(path: str | Path) -> list[Candidate]:
    """Read candidates from YAML (``candidates:`` list of configs) or CSV (one per row).

    CSV columns: ``name, family, peak_lr, steps, replay_ratio`` and optionally
    ``warmup_fraction, warmup_steps, decay_fraction, checkpoint, tokens_per_step``.
    """
    path = Path(path)
    check_input_file(path, "candidates file")
    if path.suffix.lower() == ".csv":
        return _unique_names(_candidates_from_csv(path), path)
    data = load_yaml_mapping(path)
    items = data.get("candidates")
    if set(data) - {"candidates"}:
        extra = ", ".join(sorted(set(data) - {"candidates"}))
        raise InputError(f"{path}: unknown key(s) {extra} (expected only 'candidates')")
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: 'candidates' must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        out.append(validate(Candidate, item, str(path), ("candidates", str(i))))
    return _unique_names(out, path)


def _candidates_from_csv(path: Path) -> list[Candidate]:
    import csv
    import io

    schedule_keys = {
        "family",
        "peak_lr",
        "steps",
        "warmup_fraction",
        "warmup_steps",
        "decay_fraction",
    }
    other_keys = {"name", "replay_ratio", "checkpoint", "tokens_per_step"}
    with io.StringIO(read_text(path, "candidates file"), newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InputError(f"{path}: empty CSV")
        unknown = set(reader.fieldnames) - schedule_keys - other_keys
        if unknown:
            raise InputError(f"{path}: unknown column(s) {', '.join(sorted(unknown))}")
        missing = {"family", "peak_lr", "steps", "replay_ratio"} - set(reader.fieldnames)
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        out = []
        for line, row in enumerate(reader, start=2):
            values = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
            item: dict[str, Any] = {
                "schedule": {k: v for k, v in values.items() if k in schedule_keys},
            }
            item.update({k: v for k, v in values.items() if k in other_keys})
            out.append(validate(Candidate, item, f"{path}: line {line}"))
    if not out:
        raise InputError(f"{path}: no candidate rows")
    return out


def probability_best(
    central: np.ndarray, replicas: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """P(each option is the best) under the fit's uncertainty, standard errors, and how.

    ``central`` ``(m,)`` are the options' objectives under the fitted law, ``replicas``
    ``(K, m)`` under its K leave-one-pilot-out refits. A multivariate Gaussian with mean
    ``central`` and the jackknife covariance of the replicas (so similar options stay
    correlated) is drawn ``PROBABILITY_DRAWS`` times with ``seed``.
    """
    n = replicas.shape[0]
    if n < 2:
        probability = (central == central.min()).astype(float)
        method = "no jackknife refits in the law file: probability 1 for the predicted best"
        return probability / probability.sum(), np.zeros_like(central), method
    covariance = jackknife_covariance(replicas)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(central, covariance, size=PROBABILITY_DRAWS, method="eigh")
    winners = np.bincount(np.argmin(draws, axis=1), minlength=central.size)
    method = (
        f"Gaussian on the candidates' objectives: mean = fitted law, covariance = jackknife "
        f"covariance over {n} leave-one-pilot-out refits; {PROBABILITY_DRAWS} draws, seed {seed}"
    )
    return winners / PROBABILITY_DRAWS, np.sqrt(np.diag(covariance)), method


def checkpoint_choices(
    law: CptLaw, candidates: Sequence[Candidate]
) -> tuple[list[CheckpointChoice], np.ndarray]:
    """The distinct checkpoints the candidates start from, and each candidate's index."""
    scenario = law.scenario
    names = [scenario.checkpoint_name(candidate.checkpoint) for candidate in candidates]
    choices: dict[str, CheckpointChoice] = {}
    for name in names:
        if name not in choices:
            state = scenario.checkpoint_state(name, law.lam)
            piloted = name in law.coverage.checkpoints
            choices[name] = CheckpointChoice(name, state, None, None, piloted)
    labels = list(choices)
    index = [labels.index(name) for name in names]
    return list(choices.values()), np.array(index, dtype=int)


def rank_candidates(
    law: CptLaw,
    candidates: Sequence[Candidate],
    weights: str | Sequence[float] = (0.5, 0.5),
    *,
    constraints: Constraints | None = None,
    level: float = 0.9,
    seed: int = 0,
) -> CandidateRanking:
    """Rank configurations by the predicted objective, with P(best) under fit uncertainty
    (:func:`probability_best`). Infeasible candidates are ranked too, and marked."""
    constraints = constraints or Constraints()
    w_general, w_domain, normalised = parse_weights(weights)
    if not candidates:
        raise InputError("no candidates to rank")
    if not 0 < level < 1:
        raise InputError(f"level == {level!r}, must be in (0, 1)")
    notes = list(law.notes)
    if normalised:
        notes.append(f"weights normalised to {w_general:.4g},{w_domain:.4g}")
    piloted_tps = law.coverage.tokens_per_step
    default_tps = constraints.tokens_per_step or (piloted_tps[0] if len(piloted_tps) == 1 else None)
    choices, checkpoint = checkpoint_choices(law, candidates)
    evaluator = Evaluator(law, choices, w_general, w_domain, default_tps, constraints)
    schedules = [candidate.schedule for candidate in candidates]
    replay = np.array([candidate.replay_ratio for candidate in candidates])
    tokens_per_step = [candidate.tokens_per_step or default_tps for candidate in candidates]
    runs = [
        law.scenario.run(
            schedule.lr_array(),
            replay[i],
            choices[checkpoint[i]].label,
            state=choices[checkpoint[i]].state,
            tokens_per_step=tokens_per_step[i],
            domain_tokens=constraints.domain_tokens,
        )
        for i, schedule in enumerate(schedules)
    ]
    areas = Areas.concatenate([law.run_inputs(run, np.array([run.steps])) for run in runs])
    general, domain, objective = evaluator.losses_at(areas, replicas=True)
    steps = np.array([schedule.n_steps for schedule in schedules])
    tps = np.array([np.nan if t is None else t for t in tokens_per_step], dtype=float)
    violations = evaluator.violations(steps, replay, checkpoint, general[0], domain[0], tps)
    probability, se, method = probability_best(objective[0], objective[1:], seed)
    if objective.shape[0] < 3:
        notes.append("the law has no jackknife refits: no fit uncertainty for the ranking")
    scored = []
    for rank, i in enumerate(np.argsort(objective[0], kind="stable"), start=1):
        candidate = candidates[int(i)]
        assessment = assess(
            law,
            candidate.name or f"candidate {int(i) + 1}",
            candidate.schedule,
            candidate.replay_ratio,
            choices[checkpoint[i]],
            Scored(
                float(objective[0][i]), float(se[i]), broken_constraints(violations, i, constraints)
            ),
            level=level,
            tokens_per_step=tokens_per_step[i],
            domain_tokens=constraints.domain_tokens,
        )
        scored.append(
            CandidateScore(
                rank=rank,
                name=assessment.label,
                assessment=assessment,
                probability_best=float(probability[i]),
            )
        )
    return CandidateRanking(
        weights=(w_general, w_domain), level=level, method=method, candidates=scored, notes=notes
    )
