"""Sequential piloting on real curves: does ``cptopt next-pilot`` pick pilots that fix the decision?

For each data folder (default: the bundled ``cpt-code`` and ``cpt-cyr``), scenario
``unannealed`` of its ``protocol.json``: start from the scenario's pilots; the candidates
are the scenario's non-extrapolation target runs found in the folder. Each round a strategy
picks one candidate, its real curve joins the pilots, the law is refitted (``cptopt.fit``,
default settings) and the decision is scored as ``benchmarks/accuracy.py`` scores it: the
decision grid ranked with ``rank_candidates`` for every weight pair, regret = real objective
of the predicted best minus the real best, as a fraction of the real best. Strategies:

- ``cptopt``: the best candidate of ``cptopt.next_pilot`` (pilots given, options = the
  decision grid, candidates = the remaining runs), one path per weight pair;
- ``random``: the mean over all choices. After round r the pilots are the protocol's plus r
  candidates; the mean is over every r-subset of the candidates when there are at most
  ``--subsets`` of them, else over ``--subsets`` r-subsets drawn uniformly (seeded). The
  order of the picks does not matter (the law is refitted on the set), so this is the mean
  over random sequences;
- ``max_variance``: the candidate whose predicted log-losses vary most over the law's
  jackknife refits (uncertainty sampling), one path for all weight pairs;
- ``recommendation``: run the current recommendation (common practice): the grid option
  ranked best, or the best-ranked one still among the candidates;
- ``mspe``: the acquisition of "Spend Less, Fit Better" (arXiv 2604.22753, code
  ``PlanarG/active-sl``, MIT), our own code after its ``mspe.py``: the expected reduction
  of the mean squared prediction error over the targets (the decision grid's final
  log-losses, both losses) = a parameter-uncertainty term (V-optimal: the jackknife
  covariance's Kalman update by the candidate's curve) + a model-disagreement term (how
  much observing the curve is expected to shrink the spread between the averaged law's
  member forms, through their posterior weights), divided by (cost share)^0.4, cost = the
  candidate's steps. One path for all weight pairs (it does not look at the decision).

Refits are cached by the content of the pilot set (the runs' curves, the pre-training log,
the names and settings) and of cptopt's source (``--cache DIR`` keeps them on disk across
runs), and the refits one round needs run side by side, one per core (``--jobs``), each
fit in one process (a fit's result does not depend on its workers).

Stability (issue 21, item 4): each domain's seed-to-seed noise of the decision objective
(``|obj_a / obj_b - 1|`` over its seed-replicate pairs and the weight pairs, mean) is what
a rise of cptopt's mean regret from one round to the next is compared with; the table says
``stable`` or by how much not. The stopping rule is judged against the regret it claims:
per weight pair and round, its expected regret next to the real one, and whether
"settled" was right (settled and the real regret within the tolerance: right; settled
above it: wrong; not settled within it: cautious).

With ``--format json`` and one ``--data`` folder the top level is that folder's result:
``strategies`` maps each strategy to its mean regret over the weight pairs (a fraction)
after rounds 0..3, next to the final-loss errors, the picks, the stopping rule's verdicts
(``stop_rule``), ``seed_noise``, ``stability`` and ``timing``; with several folders
``domains`` lists them and ``strategies`` is their mean.

    python benchmarks/next_pilot.py                      # both bundled domains, rich tables
    python benchmarks/next_pilot.py --data DIR --format json
    python benchmarks/next_pilot.py --format markdown    # the README's tables
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from accuracy import (
    decision_scores,
    read_manifest,
    read_run,
    score_run,
    summarise,
    write_pilot_manifest,
)

import cptopt
from cptopt.design.pilot_model import (
    LatentModel,
    eval_interval,
    informations,
    listed_pilots,
    pilot_runs,
)
from cptopt.design.pilot_value import posterior_covariance
from cptopt.law.areas import Areas
from cptopt.law.averaged import AveragedLaw
from cptopt.search import Candidate, rank_candidates

ROOT = Path(__file__).resolve().parent.parent
DATA = [ROOT / "examples" / "data" / "cpt-code", ROOT / "examples" / "data" / "cpt-cyr"]
STRATEGIES = ("cptopt", "random", "max_variance", "recommendation", "mspe")
#: cptopt's picks, no more once its stopping rule says the decision is settled.
STOPPING = "cptopt, stopping when settled"
LOSSES = ("general", "domain")
#: MSPE's cost exponent and Monte Carlo draws per member form (active-sl: COST_EXP = 0.4).
MSPE_COST_EXPONENT = 0.4
MSPE_DRAWS = 256
#: The stopping rule's default tolerance (a share of the objective): its verdicts are judged
#: against it.
TOLERANCE = 0.001


def source_digest() -> str:
    """Digest of cptopt's source: a cached refit is reused only by the code that made it."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "cptopt").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


#: The domain whose pilot sets the forked workers fit and score (set before they fork).
_WORKING: Domain | None = None


def scoring_digest() -> str:
    """Digest of the code that scores a law (benchmarks/accuracy.py and
    :meth:`Domain.score_law`): cached scores are reused only by it."""
    here = Path(__file__).resolve().parent
    own = inspect.getsource(Domain.score_law).encode()
    return hashlib.sha256((here / "accuracy.py").read_bytes() + own).hexdigest()


def _fit_into(manifest_path: str, folder: str) -> float:
    """Fit one pilot set in this process (one worker: the pool runs fits side by side),
    and score it (:meth:`Domain.score_law`) next to the law."""
    started = time.perf_counter()
    law = cptopt.fit(manifest_path, n_jobs=1)
    law_path = Path(folder) / "law.json"
    law.save(law_path.with_suffix(".part"))
    os.replace(law_path.with_suffix(".part"), law_path)
    if _WORKING is not None:
        _WORKING.score_law(law, Path(folder))
    return time.perf_counter() - started


class Domain:
    """One data folder: its runs, the scenario, and refits cached by pilot-set content."""

    def __init__(self, data: Path, scenario: str, cache: Path, jobs: int) -> None:
        self.data = data.resolve()
        protocol = json.loads((self.data / "protocol.json").read_text())
        self.spec = protocol["scenarios"][scenario]
        self.manifest = read_manifest(self.data)
        self.runs = {rid: read_run(self.data, row) for rid, row in self.manifest.items()}
        self.weights = [tuple(w) for w in protocol["weights"]]
        self.pilots = list(self.spec["pilots"])
        self.pool = [t for t in self.spec["targets"] if t in self.manifest and t not in self.pilots]
        self.grid = self.spec["decision_grid"]
        self.cache = cache
        self.jobs = jobs
        self.fits = 0
        self.fit_seconds = 0.0  # summed over the fits (CPU-ish)
        self.fit_wall = 0.0  # wall time of the batches of fits
        self._laws: dict[frozenset, tuple] = {}
        self._scores: dict[frozenset, tuple] = {}
        self.asked: dict[tuple, cptopt.NextPilot] = {}
        self._base = self._base_digest()
        self._scoring = scoring_digest()

    def _base_digest(self) -> str:
        """What every pilot set of this folder shares: the code, the pre-training log, the
        protocol (domain tokens)."""
        digest = hashlib.sha256(source_digest().encode())
        for name in ("pretrain.csv", "pretrain.json", "protocol.json"):
            digest.update((self.data / name).read_bytes())
        return digest.hexdigest()

    def digest(self, names: Sequence[str]) -> str:
        """Content hash of a pilot set: each run's settings and curve file, in name order."""
        digest = hashlib.sha256(self._base.encode())
        for rid in sorted(names):
            row = self.manifest[rid]
            digest.update(f"{rid}|{row['replay_ratio']}|{row['start_checkpoint']}|".encode())
            digest.update(hashlib.sha256((self.data / row["csv"]).read_bytes()).digest())
        return digest.hexdigest()[:20]

    def _folder(self, added: Iterable[str]) -> tuple[Path, list[str]]:
        names = self.pilots + sorted(added)
        folder = self.cache / self.digest(names)
        return folder, names

    def prefetch(self, sets: Iterable[tuple[str, ...]]) -> None:
        """Fit every pilot set not cached yet, ``jobs`` at a time (one process each)."""
        todo: dict[Path, Path] = {}
        for added in sets:
            if frozenset(added) in self._laws:
                continue
            folder, names = self._folder(added)
            if (folder / "law.json").is_file() or folder in todo:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            todo[folder] = write_pilot_manifest(self.data, self.manifest, names, folder)
        if not todo:
            return
        global _WORKING
        started = time.perf_counter()
        jobs = [(str(m), str(f)) for f, m in todo.items()]
        _WORKING = self
        try:
            if self.jobs > 1 and len(jobs) > 1:
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(min(self.jobs, len(jobs)), mp_context=context) as pool:
                    seconds = list(pool.map(_fit_into, *zip(*jobs, strict=True)))
            else:
                seconds = [_fit_into(m, folder) for m, folder in jobs]
        finally:
            _WORKING = None
        self.fit_wall += time.perf_counter() - started
        self.fit_seconds += sum(seconds)
        self.fits += len(jobs)

    def law(self, added: tuple[str, ...]) -> tuple[cptopt.FittedLaw, cptopt.PilotSet]:
        """The law fitted to the protocol's pilots plus ``added``, and its pilot set."""
        key = frozenset(added)
        if key not in self._laws:
            self.prefetch([added])
            folder, names = self._folder(added)
            manifest_path = write_pilot_manifest(self.data, self.manifest, names, folder)
            self._laws[key] = (
                cptopt.load_law(folder / "law.json"),
                cptopt.load_manifest(manifest_path),
            )
        return self._laws[key]

    def score_law(self, law: cptopt.FittedLaw, folder: Path) -> tuple[list, dict]:
        """Regret (fraction) per weight pair and mean |final error| over the targets that
        are not pilots of ``law``; written to ``folder`` (``scores.json``)."""
        names = {run.name for run in law.general.runs}
        rows = decision_scores(law, self.grid, self.manifest, self.runs, self.weights)
        regrets = [row.get("regret_rel", float("nan")) for row in rows]
        targets = [t for t in self.spec["targets"] if t in self.manifest and t not in names]
        errors = {t: score_run(law, self.runs[t], self.manifest[t])[0] for t in targets}
        summary = summarise(errors)
        final = {k: summary[k]["final_mean"] for k in LOSSES}
        payload = {"scoring": self._scoring, "regrets": regrets, "final": final}
        (folder / "scores.part").write_text(json.dumps(payload))
        os.replace(folder / "scores.part", folder / "scores.json")
        return regrets, final

    def scores(self, added: tuple[str, ...]) -> tuple[list[float], dict[str, float]]:
        """Regret (fraction) per weight pair, and mean |final error| over the targets left
        (cached next to the law, computed by the worker that fitted it)."""
        key = frozenset(added)
        if key not in self._scores:
            folder, _ = self._folder(added)
            path = folder / "scores.json"
            cached = json.loads(path.read_text()) if path.is_file() else {}
            if cached.get("scoring") == self._scoring:
                self._scores[key] = (cached["regrets"], cached["final"])
            else:
                self._scores[key] = self.score_law(self.law(added)[0], folder)
        return self._scores[key]

    def remaining(self, added: tuple[str, ...]) -> list[str]:
        return [rid for rid in self.pool if rid not in added]

    def candidate(self, rid: str) -> Candidate:
        return Candidate(
            name=rid,
            schedule=cptopt.Schedule(family="custom", lr=tuple(self.runs[rid]["lr"].tolist())),
            replay_ratio=float(self.manifest[rid]["replay_ratio"]),
            checkpoint=self.manifest[rid]["start_checkpoint"],
        )

    def seed_noise(self) -> dict:
        """Seed-to-seed noise of the decision objective: mean over the folder's
        seed-replicate pairs and the weight pairs of ``|obj_a / obj_b - 1|``."""
        keys = ("start_checkpoint", "peak_lr", "replay_ratio", "schedule", "total_steps")
        groups: dict[tuple, list[str]] = {}
        for rid, row in self.manifest.items():
            groups.setdefault(tuple(row[k] for k in keys), []).append(rid)
        pairs = [members[:2] for members in groups.values() if len(members) >= 2]
        final = {
            rid: {loss: self.runs[rid]["curves"][loss][1][-1] for loss in LOSSES}
            for pair in pairs
            for rid in pair
        }
        diffs = [
            abs(
                (wg * final[a]["general"] + wd * final[a]["domain"])
                / (wg * final[b]["general"] + wd * final[b]["domain"])
                - 1
            )
            for a, b in pairs
            for wg, wd in self.weights
        ]
        return {
            "objective": float(np.mean(diffs)) if diffs else float("nan"),
            "pairs": len(pairs),
        }


# -- strategies ----------------------------------------------------------------------


def ask_cptopt(
    domain: Domain, added: tuple[str, ...], weights: tuple[float, float]
) -> cptopt.NextPilot:
    """``cptopt.next_pilot`` on a pilot set (asked once per set and weights)."""
    key = (frozenset(added), tuple(weights))
    if key not in domain.asked:
        law, pilots = domain.law(added)
        domain.asked[key] = cptopt.next_pilot(
            law,
            weights,
            pilots=pilots,
            candidate_pilots=[domain.candidate(r) for r in domain.remaining(added)],
            options=[domain.candidate(r) for r in domain.grid],
            top_k=None,
        )
    return domain.asked[key]


def pick_max_variance(domain: Domain, added: tuple[str, ...]) -> str:
    result = ask_cptopt(domain, added, (0.5, 0.5))  # the predictive SD ignores the weights
    return max(result.candidate_pilots, key=lambda c: c.predictive_sd).name


def pick_recommendation(
    domain: Domain, added: tuple[str, ...], weights: tuple[float, float]
) -> str:
    law, _ = domain.law(added)
    ranking = rank_candidates(law, [domain.candidate(r) for r in domain.grid], weights)
    left = domain.remaining(added)
    for item in ranking.candidates:
        if item.name in left:
            return item.name
    return left[0]  # every grid option is a pilot already: the first candidate left


def mspe_scores(
    law: cptopt.FittedLaw,
    pilots: cptopt.PilotSet,
    candidates: Sequence[Candidate],
    targets: Sequence[Candidate],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """MSPE acquisition of each candidate (active-sl's ``compute_selection_score``, in
    cptopt's terms): ``intra`` + ``inter`` over (cost share)^0.4.

    - ``intra`` (parameter uncertainty, V-optimal): the drop of the summed variance of the
      targets' log-losses, ``tr(J_t (I - S_c) J_t')``, where ``J_t`` is the targets'
      sensitivity to the latent ``z ~ N(0, I)`` spanned by the jackknife refits and ``S_c``
      the covariance after the candidate's curve (the Kalman step of next-pilot);
    - ``inter`` (model disagreement): per averaged set, ``sum_{k<l} w_k w_l |f_k - f_l|^2``
      over the targets (members' log-losses, fitted weights) minus its expectation after
      the candidate's curve, whose likelihood under each member (``N(member curve, noise^2
      I + offset^2 11' + J_c J_c')``) reweights the members; Monte Carlo over the curve.
    """
    model = LatentModel(law, "ensemble")
    every = eval_interval(law, pilots)
    runs = listed_pilots(law, candidates, None)
    existing = pilot_runs(law, pilots)
    repeat = np.array([any(run.repeats(p) for p in existing) for run in runs])
    info, _, _ = informations(model, runs, every)
    info[repeat] = 0.0
    eye = np.eye(model.dimension)
    reduction = eye - posterior_covariance(eye, info)  # (c, K, K)
    target_runs = listed_pilots(law, targets, None)
    areas = Areas.concatenate(
        [law.run_inputs(r.law_run(law), np.array([r.lr.size])) for r in target_runs]
    )
    rows = [np.nan_to_num(model.sensitivity(vs, areas, log=True)[1]) for vs in law.validation_sets]
    sens = np.vstack(rows)
    intra = np.einsum("nk,ckl,nl->c", sens, reduction, sens)
    # a repeat tells nothing: set, not computed (I - posterior(I, 0) is 0 only up to rounding)
    intra[repeat] = 0.0
    inter = np.zeros(len(runs))
    rng = np.random.default_rng(seed)
    for vs in law.validation_sets:
        form = model.forms[vs]
        if not isinstance(form, AveragedLaw):
            continue
        parts, weights = form.split_members(model.values[vs])
        weights = np.asarray(weights, dtype=float)
        at_targets = np.array(
            [np.log(m.evaluate(p, areas)) for m, p in zip(form.members, parts, strict=True)]
        )
        gaps = ((at_targets[:, None, :] - at_targets[None, :, :]) ** 2).sum(axis=2)  # (M, M)
        before = 0.5 * weights @ gaps @ weights
        noise, offset = model.noise[vs]
        for i, run in enumerate(runs):
            if repeat[i]:
                continue
            points = run.points(law, every)[vs]
            curves = np.array(
                [np.log(m.evaluate(p, points)) for m, p in zip(form.members, parts, strict=True)]
            )
            _, jac = model.sensitivity(vs, points, log=True)
            jac = np.nan_to_num(jac)
            n = curves.shape[1]
            cov = noise**2 * np.eye(n) + offset**2 * np.ones((n, n)) + jac @ jac.T
            root = np.linalg.cholesky(cov)
            precision = np.linalg.inv(cov)
            after = 0.0
            for k in range(len(form.members)):
                draws = curves[k] + rng.standard_normal((MSPE_DRAWS, n)) @ root.T
                residual = draws[:, None, :] - curves[None, :, :]  # (D, M, n)
                loglik = -0.5 * np.einsum("dmi,ij,dmj->dm", residual, precision, residual)
                logpost = np.log(np.maximum(weights, 1e-300)) + loglik
                post = np.exp(logpost - logpost.max(axis=1, keepdims=True))
                post /= post.sum(axis=1, keepdims=True)
                spread = 0.5 * np.einsum("dm,mn,dn->d", post, gaps, post)
                after += weights[k] * float(spread.mean())
            inter[i] += max(before - after, 0.0)
    steps = np.array([run.lr.size for run in runs], dtype=float)
    cost = steps / steps.sum()
    score = (intra + inter) / cost**MSPE_COST_EXPONENT
    return {"intra": intra, "inter": inter, "cost": cost, "score": score}


def pick_mspe(domain: Domain, added: tuple[str, ...]) -> str:
    law, pilots = domain.law(added)
    left = domain.remaining(added)
    scores = mspe_scores(
        law, pilots, [domain.candidate(r) for r in left], [domain.candidate(r) for r in domain.grid]
    )
    return left[int(np.argmax(scores["score"]))]


# -- the replay ------------------------------------------------------------------------


def run_paths(domain: Domain, rounds: int, extra: Iterable[tuple[str, ...]] = ()) -> dict:
    """Regret per round of the path strategies, and cptopt's stop verdicts.

    Round by round over every weight pair, so that the refits one round needs (and
    ``extra`` sets, fitted with the first round) run side by side."""
    names = ("cptopt", "max_variance", "recommendation", "mspe", STOPPING)
    regret = {name: np.zeros(rounds + 1) for name in names}
    errors = {name: np.zeros((rounds + 1, 2)) for name in names}
    n = len(domain.weights)
    per_weight: dict[str, list] = {name: [[] for _ in range(n)] for name in names}
    paths = [dict.fromkeys(names, ()) for _ in range(n)]
    stopped = [False] * n
    verdicts = []
    pending = list(extra)
    for r in range(rounds + 1):
        domain.prefetch([added for path in paths for added in path.values()] + pending)
        pending = []
        for w_index in range(n):
            for name, added in paths[w_index].items():
                regrets, final = domain.scores(added)
                regret[name][r] += regrets[w_index] / n
                per_weight[name][w_index].append(regrets[w_index])
                errors[name][r] += np.array([final[k] for k in LOSSES]) / n
        if r == rounds:
            break
        shared = {
            "max_variance": pick_max_variance(domain, paths[0]["max_variance"]),
            "mspe": pick_mspe(domain, paths[0]["mspe"]),
        }
        for w_index, weights in enumerate(domain.weights):
            path = paths[w_index]
            answer = ask_cptopt(domain, path["cptopt"], weights)
            real = domain.scores(path["cptopt"])[0][w_index]
            verdicts.append(
                {
                    "weights": list(weights),
                    "round": r,
                    "settled": answer.settled,
                    "expected_regret": answer.expected_regret / answer.objective,
                    "real_regret": real,
                    "verdict": judge(answer.settled, real),
                    "p_best": answer.p_best,
                    "pick": answer.best.name if answer.best else None,
                    "reason": answer.reason,
                    "seconds": answer.seconds,
                }
            )
            stopped[w_index] = stopped[w_index] or answer.settled
            for name, pick in shared.items():
                path[name] += (pick,)
            path["recommendation"] += (
                pick_recommendation(domain, path["recommendation"], weights),
            )
            path["cptopt"] += (answer.best.name,)
            if not stopped[w_index]:
                path[STOPPING] = path["cptopt"]
    picks = {name: [list(path[name]) for path in paths] for name in names}
    for name in ("max_variance", "mspe"):
        picks[name] = picks[name][:1]
    return {
        "regret": regret,
        "per_weight": per_weight,
        "errors": errors,
        "picks": picks,
        "verdicts": verdicts,
    }


def judge(settled: bool, real: float) -> str:
    """Whether the stopping rule's verdict was right, against the real regret."""
    if settled:
        return "right" if real <= TOLERANCE else "wrong (real regret above the tolerance)"
    return "right" if real > TOLERANCE else "cautious (already within the tolerance)"


def random_subsets(domain: Domain, rounds: int, limit: int, seed: int) -> list[list[tuple]]:
    """Per round, the r-subsets of the candidates the random strategy averages over."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(rounds + 1):
        subsets = list(itertools.combinations(domain.pool, r))
        if len(subsets) > limit:
            chosen = rng.choice(len(subsets), size=limit, replace=False)
            subsets = [subsets[i] for i in sorted(chosen)]
        out.append(subsets)
    return out


def run_random(domain: Domain, subsets: list[list[tuple]]) -> tuple[list, list, list]:
    """Mean regret over the weight pairs and r-subsets of the candidates, per round."""
    regret, errors, counts = [], [], []
    for chosen in subsets:
        scored = [domain.scores(s) for s in chosen]
        regret.append(float(np.mean([np.mean(s[0]) for s in scored])))
        errors.append([float(np.mean([s[1][k] for s in scored])) for k in LOSSES])
        counts.append(len(chosen))
    return regret, errors, counts


def stability(regret: Sequence[float], noise: float) -> dict:
    """cptopt's largest rise of mean regret from one round to the next, against the noise."""
    rises = [b - a for a, b in itertools.pairwise(regret)]
    worst = max(rises) if rises else 0.0
    return {
        "largest_rise": float(worst),
        "noise": noise,
        "stable": bool(worst <= noise),
    }


def time_cli(domain: Domain, repeats: int = 3) -> float:
    """Median wall time of ``cptopt next-pilot`` on the protocol's pilots (fresh process)."""
    law, _ = domain.law(())
    with tempfile.TemporaryDirectory() as folder:
        law_path = Path(folder) / "law.json"
        law.save(law_path)
        manifest_path = write_pilot_manifest(
            domain.data, domain.manifest, domain.pilots, Path(folder)
        )
        command = [
            sys.executable, "-c", "from cptopt.cli import main; main()", "next-pilot",
            "--law", str(law_path), "--pilots", str(manifest_path), "--weights", "0.3,0.7",
        ]  # fmt: skip
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def score_domain(data: Path, args: argparse.Namespace, cache: Path) -> dict:
    started, load = time.perf_counter(), list(os.getloadavg())
    domain = Domain(data, args.scenario, cache, args.jobs)
    subsets = random_subsets(domain, args.rounds, args.subsets, args.seed)
    extra = [s for chosen in subsets for s in chosen]
    paths = run_paths(domain, args.rounds, extra)
    random_regret, random_errors, counts = run_random(domain, subsets)
    strategies = {name: [float(v) for v in paths["regret"][name]] for name in paths["regret"]}
    strategies["random"] = random_regret
    errors = {name: paths["errors"][name].tolist() for name in paths["errors"]}
    errors["random"] = random_errors
    noise = domain.seed_noise()
    best = {
        f"round {r}": all(
            strategies["cptopt"][r] <= strategies[name][r] + 1e-12 for name in STRATEGIES
        )
        for r in range(1, args.rounds + 1)
    }  # 1e-12: the same regret computed along two paths (not a tolerance on the claim)
    seconds = time.perf_counter() - started
    return {
        "data": str(domain.data),
        "scenario": args.scenario,
        "candidates": domain.pool,
        "strategies": {name: strategies[name] for name in STRATEGIES},
        "with_stopping_rule": strategies[STOPPING],
        "cptopt_at_or_below_all": best,
        "final_errors": {name: errors[name] for name in (*STRATEGIES, STOPPING)},
        "picks": paths["picks"],
        "regret_per_weight": paths["per_weight"],
        "stop_rule": paths["verdicts"],
        "seed_noise": noise,
        "stability": stability(strategies["cptopt"], noise["objective"]),
        "random_subsets": counts,
        "pilot_sets": len(domain._scores),
        "refits": domain.fits,
        "refit_seconds": domain.fit_seconds,
        "timing": {
            "seconds": seconds,
            "fits": domain.fits,
            "fit_wall_seconds": domain.fit_wall,
            "jobs": args.jobs,
            "load_start": load,
            "load_end": list(os.getloadavg()),
        },
        "seconds": seconds,
        "cli_seconds": time_cli(domain) if args.time_cli else None,
    }


# -- output --------------------------------------------------------------------------


def pct(value: float) -> str:
    return f"{100 * value:.3f}%"


def regret_rows(result: dict, rounds: int) -> list[list[str]]:
    name = Path(result["data"]).name
    rows = []
    for strategy in (*STRATEGIES, STOPPING):
        errors = result["final_errors"][strategy]
        regrets = result["strategies"].get(strategy, result["with_stopping_rule"])
        rows.append(
            [name, strategy]
            + [pct(v) for v in regrets]
            + [f"{100 * errors[-1][0]:.2f}% / {100 * errors[-1][1]:.2f}%"]
        )
    return rows


def stop_rows(result: dict) -> list[list[str]]:
    name = Path(result["data"]).name
    return [
        [
            name,
            ",".join(f"{w:g}" for w in v["weights"]),
            str(v["round"]),
            pct(v["expected_regret"]),
            pct(v["real_regret"]),
            f"{v['p_best']:.2f}",
            "yes" if v["settled"] else "no",
            v["verdict"],
            v["pick"] or "-",
        ]
        for v in result["stop_rule"]
    ]


def verdict_rows(result: dict) -> list[list[str]]:
    name = Path(result["data"]).name
    stable = result["stability"]
    pairs = result["seed_noise"]["pairs"]
    best = result["cptopt_at_or_below_all"]
    regret = result["strategies"]
    rows = []
    for label, ok in best.items():
        r = int(label.split()[-1])
        beaten = [s for s in STRATEGIES if regret[s][r] < regret["cptopt"][r] - 1e-12]
        rows.append(
            [
                name,
                f"cptopt at or below every strategy after {label}",
                "met" if ok else "MISSED",
                "" if ok else "below it: " + ", ".join(f"{s} {pct(regret[s][r])}" for s in beaten),
            ]
        )
    rows.append(
        [
            name,
            "cptopt's regret never rises by more than the seed noise",
            "met" if stable["stable"] else "MISSED",
            f"largest rise {pct(stable['largest_rise'])} vs seed noise {pct(stable['noise'])} "
            f"({pairs} seed-replicate pair{'' if pairs == 1 else 's'})",
        ]
    )
    verdicts = [v["verdict"] for v in result["stop_rule"]]
    rows.append(
        [
            name,
            "stopping rule",
            f"{sum(v == 'right' for v in verdicts)}/{len(verdicts)} right",
            f"{sum(v.startswith('wrong') for v in verdicts)} wrong, "
            f"{sum(v.startswith('cautious') for v in verdicts)} cautious",
        ]
    )
    return rows


def headers(rounds: int) -> tuple[list[str], list[str], list[str]]:
    regret = ["domain", "strategy"] + [f"round {r}" for r in range(rounds + 1)]
    regret.append(f"final error round {rounds} (general / domain)")
    stop = [
        "domain", "weights", "round", "expected regret", "real regret", "P(best)", "settled",
        "verdict", "cptopt picks",
    ]  # fmt: skip
    verdict = ["domain", "bar", "verdict", "numbers"]
    return regret, stop, verdict


def footer(results: list[dict]) -> str:
    parts = []
    for result in results:
        cli = result["cli_seconds"]
        timing = result["timing"]
        load = "/".join(f"{x:.1f}" for x in (timing["load_start"][0], timing["load_end"][0]))
        parts.append(
            f"{Path(result['data']).name}: {result['pilot_sets']} pilot sets "
            f"({timing['fits']} fitted, not cached: {timing['fit_wall_seconds']:.0f} s wall on "
            f"{timing['jobs']} processes), random over "
            f"{'/'.join(map(str, result['random_subsets']))} subsets per round, "
            f"total {timing['seconds']:.0f} s (1-minute load average at start/end {load})"
            + (f", `cptopt next-pilot` {cli:.2f} s (median of 3, fresh process)" if cli else "")
        )
    return "regret: mean over the weight pairs, fraction of the real best. " + "; ".join(parts)


def print_tables(results: list[dict], rounds: int, markdown: bool) -> None:
    regret_head, stop_head, verdict_head = headers(rounds)
    tables = (
        ("mean regret over the weight pairs after each round", regret_head,
         [row for r in results for row in regret_rows(r, rounds)]),
        ("cptopt's stopping rule before each pick: claimed vs real regret", stop_head,
         [row for r in results for row in stop_rows(r)]),
        ("bars (issue 21, items 3 and 4)", verdict_head,
         [row for r in results for row in verdict_rows(r)]),
    )  # fmt: skip
    if markdown:
        for _, columns, rows in tables:
            print("| " + " | ".join(columns) + " |")
            print("|" + "|".join("---" for _ in columns) + "|")
            for row in rows:
                print("| " + " | ".join(row) + " |")
            print()
        print(footer(results))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    for title, columns, rows in tables:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(footer(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, action="append", help="folder(s) in the cpt-code layout"
    )
    parser.add_argument("--scenario", default="unannealed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=24, help="random: r-subsets per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="keep the refits here (default: temporary)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        help="fits side by side (default: one per usable core)",
    )
    parser.add_argument("--no-time-cli", dest="time_cli", action="store_false")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or Path(temporary)
        results = [score_domain(data, args, cache) for data in args.data or DATA]
    if args.format == "json":
        top = results[0] if len(results) == 1 else {"domains": results}
        if len(results) > 1:
            top["strategies"] = {
                name: [
                    float(np.mean(v))
                    for v in zip(*(r["strategies"][name] for r in results), strict=True)
                ]
                for name in STRATEGIES
            }
        json.dump(top, sys.stdout, indent=1)
        print()
    else:
        print_tables(results, args.rounds, args.format == "markdown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
