"""The law file, schema 5: a record per kind of pilot (discriminated on ``kind``), each set's
form and LR power, the domain forward area, the corpus size, and the files of schemas 3
and 4 that users already have (tests/fixtures/laws, written by those versions)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter

from cptopt import Schedule, predict
from cptopt.exceptions import InputError, SchemaVersionError
from cptopt.law import (
    SCHEMA_VERSION,
    CptLaw,
    FittedLaw,
    LawRecord,
    PretrainRunsLaw,
    cpt_law,
    load_cpt_law,
    load_law,
)

LAWS = Path(__file__).resolve().parents[1] / "fixtures" / "laws"


def test_schema_6_round_trip(fitted_law, tmp_path):
    assert SCHEMA_VERSION == 6 and isinstance(fitted_law, CptLaw) and fitted_law.kind == "cpt"
    path = fitted_law.save(tmp_path / "law.json")
    loaded = load_law(path)
    assert loaded == fitted_law
    for name in ("general", "domain"):
        fit = loaded.set_fit(name)
        form = loaded.form_for(name)
        assert form.name == fit.form and form.lr_power == fit.lr_power
        assert form.names == fit.parameter_names
    assert loaded.domain_forward == "frozen"
    assert loaded.form_for("domain").frozen_forward
    assert loaded.domain.pt_points == "checkpoint"


def test_a_pretraining_law_round_trips_with_its_one_set(pretrain_law, tmp_path):
    assert isinstance(pretrain_law, PretrainRunsLaw) and pretrain_law.kind == "pretrain"
    assert pretrain_law.validation_sets == ("loss",) and pretrain_law.loss.validation_set == "loss"
    assert pretrain_law.set_fits == [pretrain_law.loss]
    loaded = load_law(pretrain_law.save(tmp_path / "law.json"))
    assert loaded == pretrain_law and loaded.form_for("loss").name == "pretrain"
    # pydantic tells the kinds apart by ``kind`` alone (FittedLaw is a discriminated union)
    assert TypeAdapter(FittedLaw).validate_json(pretrain_law.model_dump_json()) == pretrain_law
    data = json.loads((tmp_path / "law.json").read_text())
    assert {"domain", "pretrain", "general", "form", "replay_terms"}.isdisjoint(data)


def test_schema_4_files_load_and_predict_as_they_did():
    """Today's files, read by this version: a CPT law keeps every key (only the version
    moves); a pre-training law names its set ``loss`` and drops the CPT keys."""
    cpt_file = LAWS / "v4-cpt-unannealed.json"
    law = load_law(cpt_file)
    assert isinstance(law, CptLaw) and law.schema_version == SCHEMA_VERSION
    written = json.loads(cpt_file.read_text())
    assert json.loads(law.model_dump_json()) == {**written, "schema_version": SCHEMA_VERSION}
    pretrain = load_law(LAWS / "v4-pretrain-mpl25.json")
    assert isinstance(pretrain, PretrainRunsLaw) and pretrain.loss.validation_set == "loss"
    old = json.loads((LAWS / "v4-pretrain-mpl25.json").read_text())
    assert pretrain.loss.values == old["general"]["values"]
    assert pretrain.loss.jackknife == old["general"]["jackknife"]
    # Exactly what the version-4 law predicts, through the new record.
    schedule = Schedule(family="wsd", peak_lr=3e-4, steps=24000, warmup_steps=2160)
    prediction = predict(pretrain, schedule, steps=[2161, 24000])
    form = pretrain.form_for("loss")
    inputs = pretrain.scenario.inputs(
        pretrain.scenario.run(schedule), np.array([2161, 24000]), pretrain.needs
    )
    mean = form.evaluate(np.array(old["general"]["values"]), inputs)
    np.testing.assert_allclose(prediction.loss.mean, mean, rtol=1e-12)


def test_schema_3_files_load_as_cpt_laws():
    v3 = load_law(LAWS / "v3-cpt-unannealed.json")
    assert isinstance(v3, CptLaw) and v3.schema_version == SCHEMA_VERSION
    written = json.loads((LAWS / "v3-cpt-unannealed.json").read_text())
    assert "kind" not in written and written["schema_version"] == 3
    assert v3.general.values == written["general"]["values"]
    schedule = Schedule(family="wsd", peak_lr=1e-3, steps=1000, warmup_steps=20)
    prediction = predict(v3, schedule, 0.25)
    assert 0 < prediction.domain.final < prediction.domain.initial  # CPT on the domain
    assert prediction.checkpoint == "unannealed"


def test_a_law_file_says_what_it_was_fitted_to(fitted_law, tmp_path):
    data = json.loads(fitted_law.model_dump_json())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**data, "kind": "pretrain"}))
    with pytest.raises(InputError, match=r"bad\.json: loss: Field required"):
        load_law(path)
    path.write_text(json.dumps({**data, "domain": None}))
    with pytest.raises(InputError, match=r"bad\.json: domain: "):
        load_law(path)
    path.write_text(json.dumps({**data, "kind": "mid-training"}))
    with pytest.raises(InputError, match=r"kind: 'mid-training' is not a kind of law"):
        load_law(path)


def test_cpt_only_uses_narrow_a_law_once(pretrain_law, fitted_law, tmp_path):
    path = pretrain_law.save(tmp_path / "law.json")
    with pytest.raises(InputError, match=r"law\.json: kind: recommend\(\) needs a CPT law") as e:
        load_cpt_law(path, "recommend()")
    assert e.value.fields == ("recommend()", "predict()")
    assert e.value.render({"recommend()": "cptopt recommend"}).count("cptopt recommend") == 1
    with pytest.raises(InputError, match=r"^check\(\) needs a CPT law"):
        cpt_law(pretrain_law, "check()")
    assert cpt_law(fitted_law, "check()") is fitted_law
    assert isinstance(pretrain_law, LawRecord) and isinstance(fitted_law, LawRecord)
    with pytest.raises(InputError, match="no domain set; it was fitted on loss"):
        pretrain_law.set_fit("domain")


def _with_long_pt(law: CptLaw, steps: int) -> CptLaw:
    """``law`` continuing a cosine PT history of ``steps`` updates, its LRs logged with 6
    significant digits (as a log rounds them), its checkpoint moved to the last one."""
    s = np.arange(1, steps + 1)
    lr = 3e-5 + 2.7e-4 * 0.5 * (1 + np.cos(np.pi * np.clip((s - 200) / (steps - 200), 0, 1)))
    lr = np.where(s < 200, 3e-4 * s / 200, lr)
    rounded = [float(f"{value:.6g}") for value in lr]
    pretrain = law.pretrain.model_copy(update={"lr": rounded, "checkpoints": {"unannealed": steps}})
    return law.model_copy(update={"pretrain": pretrain})


def test_a_long_pt_history_is_written_packed_and_read_back_bit_for_bit(fitted_law, tmp_path):
    """From PACKED_LR_MIN updates on, the PT LRs are written packed (200,000 such LRs: 2.6 MB
    as a JSON list, 0.04 MB packed), and read back exactly; shorter ones stay a list."""
    from cptopt.law.records import PACKED_LR_ENCODING, PACKED_LR_MIN

    assert len(fitted_law.pretrain.lr) < PACKED_LR_MIN  # the bundled history: 4,000 updates
    short = json.loads(fitted_law.save(tmp_path / "short.json").read_text())
    assert isinstance(short["pretrain"]["lr"], list)
    law = _with_long_pt(fitted_law, 200_000)
    path = law.save(tmp_path / "law.json")
    packed = json.loads(path.read_text())["pretrain"]["lr"]
    assert packed["encoding"] == PACKED_LR_ENCODING and packed["size"] == 200_000
    assert path.stat().st_size < 0.1 * len(json.dumps(law.pretrain.lr))
    loaded = load_law(path)
    assert loaded.pretrain.lr == law.pretrain.lr  # exactness is the contract: bit for bit
    assert loaded == law


def test_packing_keeps_any_lrs_bit_for_bit():
    from cptopt.law.records import pack_lr, unpack_lr

    rng = np.random.default_rng(0)
    lr = np.concatenate([[0.0, 5e-324, 1e308, 0.1, 3e-4], rng.exponential(1e-3, 1000)])
    back = np.array(unpack_lr(json.loads(json.dumps(pack_lr(lr.tolist())))))
    assert back.tobytes() == lr.tobytes()
    assert unpack_lr(pack_lr([])) == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"data": "not base64!"}, "not the base64 of zlib-compressed bytes"),
        ({"size": 199_999}, "data holds more than the 199999 LRs size says"),
        ({"size": 200_001}, "data holds 200000 LRs, size says 200001"),
        ({"size": 10**12}, "is not a count of at most 10,000,000 updates"),
        ({"encoding": "gzip"}, "encoding 'gzip' is not"),
        ({"extra": 1}, "has the keys encoding, size and data"),
    ],
)
def test_a_damaged_packed_history_is_one_line_naming_the_field(fitted_law, tmp_path, change, says):
    path = _with_long_pt(fitted_law, 200_000).save(tmp_path / "law.json")
    data = json.loads(path.read_text())
    data["pretrain"]["lr"] = {**data["pretrain"]["lr"], **change}
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="pretrain.lr") as error:
        load_law(path)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_older_and_newer_schemas_are_refused(fitted_law, tmp_path):
    data = json.loads(fitted_law.model_dump_json())
    path = tmp_path / "old.json"
    for version in (2, SCHEMA_VERSION + 1):
        path.write_text(json.dumps({**data, "schema_version": version}))
        with pytest.raises(SchemaVersionError, match="reads versions 3, 4, 5 and 6; refit"):
            load_law(path)


def test_inputs_discount_repeated_domain_data(fitted_law):
    law = fitted_law.model_copy(update={"domain_tokens": 300_000.0})
    lr = np.full(2000, 1e-3)
    steps = np.array([0, 200, 2000])
    areas = law.run_inputs(law.scenario.run(lr, 0.25, tokens_per_step=1024), steps)
    # 2000 steps x 0.75 x 1024 tokens: ~5 epochs of a 300k-token corpus
    assert areas.s1_shift[1] == areas.s1_cpt[1]  # the first epoch is fresh
    assert areas.s1_shift[2] < areas.s1_cpt[2]
    scenario = fitted_law.scenario
    fresh = fitted_law.run_inputs(scenario.run(lr, 0.25, tokens_per_step=1024), steps)
    np.testing.assert_array_equal(fresh.s1_shift, fresh.s1_cpt)  # corpus size unknown
    given = scenario.run(lr, 0.25, tokens_per_step=1024, domain_tokens=300_000.0)
    np.testing.assert_array_equal(fitted_law.run_inputs(given, steps).s1_shift, areas.s1_shift)


def _edit(path: list, value: object):
    """An edit of a law file's JSON: set the value at ``path`` (keys and list indices)."""

    def edit(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _swap_first_names(data: dict) -> None:
    names = data["general"]["parameter_names"]
    names[0], names[1] = names[1], names[0]


#: Damaged law files (an edit of a good one) and the one line each gets: the file, the field.
DAMAGED = [
    (_edit(["general", "jackknife", 0, 2], float("nan")), r"general\.jackknife\[0\]\[2\] is NaN"),
    (_edit(["general", "values", 3], float("nan")), r"general\.values\[3\] is NaN"),
    (_edit(["domain", "values", 0], float("inf")), r"domain\.values\[0\] is Infinity"),
    (_edit(["general", "values", 0], "-inf"), r"general\.values\[0\] is -Infinity"),
    (_edit(["general", "values", 1], 1e300), r"values\[1\] \(odds\^q\.A\) == 1e\+300, outside"),
    (lambda d: d["general"]["values"].pop(0), r"general\.values: 29 values for 30 parameters"),
    (lambda d: d["domain"]["jackknife"][1].pop(), r"domain\.jackknife\[1\]: 28 values for 29"),
    (_edit(["general", "parameters", 2, "value"], 0.5), r"parameters\[2\]\.value == 0\.5 but "),
    (_swap_first_names, r"general\.parameter_names: odds\^q\.A, odds\^q\.L0, "),
    (_edit(["general", "interval_scale"], -1.0), r"general\.interval_scale == -1\.0, must be > 0"),
    (_edit(["domain", "noise"], float("nan")), r"domain\.noise is NaN"),
    (_edit(["coverage", "peak_lr_min"], 0.01), r"coverage\.peak_lr_min 0\.01 and peak_lr_max"),
    (_edit(["coverage", "steps_min"], 10**6), r"coverage\.steps_min 1000000 and steps_max"),
    (_edit(["coverage", "replay_ratios"], []), r"coverage\.replay_ratios: empty"),
    (_edit(["coverage", "replay_ratios"], [0.0, 1.5]), r"coverage\.replay_ratios: 1\.5 is outside"),
    (_edit(["coverage", "checkpoints"], ["x"]), r"coverage\.checkpoints: 'x' is not one of"),
    (_edit(["pretrain", "lr"], []), r"pretrain\.lr: empty"),
    (lambda d: d["pretrain"].update(lr=d["pretrain"]["lr"][:99]), r"outside the 99 steps of"),
    (_edit(["pretrain", "lr", 5], -1.0), r"pretrain\.lr\[5\] == -1\.0, must be >= 0"),
    (_edit(["pretrain", "warmup_steps"], 10**6), r"pretrain\.warmup_steps == 1000000"),
    (_edit(["general", "form"], "linear"), r"general\.form: 'linear' is not a form of this kind"),
    (_edit(["domain", "form"], "pretrain"), r"domain\.form: 'pretrain' is not a form of this"),
    (_edit(["form"], "paper"), r"form: 'paper', but general\.form is 'odds\^q/relax\^q'"),
    (lambda d: d.update(annealing="s2", lam=None), r"lam == None: the S2 memory needs"),
    (lambda d: d.update(annealing="s2", lam=1.5), r"lam == 1\.5: the S2 memory needs"),
    (_edit(["replay_terms"], False), r"replay_terms: False, but coverage\.replay_ratios has 3"),
    (_edit(["domain_tokens"], -5), r"domain_tokens == -5\.0, must be > 0"),
    (
        lambda d: d.update(domain_tokens=1e6, coverage={**d["coverage"], "tokens_per_step": []}),
        r"domain_tokens: given, but coverage\.tokens_per_step is empty",
    ),
    (_edit(["tied"], ["nope"]), r"tied: 'nope' is not a parameter of both sets"),
    (_edit(["general", "jackknife", 0, 0], "a"), r"general\.jackknife\.0\.0: Input should be a"),
]


@pytest.mark.parametrize(("edit", "pattern"), DAMAGED, ids=[p for _, p in DAMAGED])
def test_a_damaged_law_file_is_refused_naming_the_field(fitted_law, tmp_path, edit, pattern):
    data = json.loads(fitted_law.model_dump_json())
    # what the edits assume: the default law, averages of 30 (general) and 29 parameters
    assert (data["form"], data["annealing"]) == ("odds^q/relax^q", "mpl")
    assert (len(data["general"]["values"]), len(data["domain"]["values"])) == (30, 29)
    edit(data)
    path = tmp_path / "law.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as error:
        load_law(path)
    assert re.fullmatch(rf"{re.escape(str(path))}: .*", str(error.value))
    assert re.search(pattern, str(error.value)), str(error.value)


def test_a_damaged_pretraining_law_is_refused_too(pretrain_law, tmp_path):
    data = json.loads(pretrain_law.model_dump_json())
    path = tmp_path / "law.json"
    for edit, pattern in [
        (_edit(["loss", "values", 1], float("nan")), r"loss\.values\[1\] is NaN"),
        (_edit(["loss", "form"], "paper"), r"loss\.form: 'paper' is not a form of this kind"),
        (_edit(["coverage", "steps_min"], 10**6), r"coverage\.steps_min 1000000 and"),
    ]:
        damaged = json.loads(json.dumps(data))
        edit(damaged)
        path.write_text(json.dumps(damaged))
        with pytest.raises(InputError, match=pattern):
            load_law(path)


def test_every_law_file_cptopt_wrote_passes_the_checks(fitted_law, pretrain_law, tmp_path):
    for law in (fitted_law, pretrain_law):
        assert law.problem() is None
        assert load_law(law.save(tmp_path / "law.json")) == law
    for path in sorted(LAWS.glob("*.json")):
        assert load_law(path).problem() is None, path.name


def test_a_law_file_nested_too_deeply_is_one_line(tmp_path):
    path = tmp_path / "law.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=r"law\.json: nested too deeply to be a law file"):
        load_law(path)


def _with_domain(fitted_law, tmp_path, **changes) -> Path:
    """``fitted_law``'s file with keys of its domain set changed (as a hand edit would,
    ``values`` in both places the file keeps them)."""
    data = json.loads(fitted_law.model_dump_json())
    data["domain"].update(changes)
    if "values" in changes:  # each parameter's record shows its value too
        for parameter, value in zip(data["domain"]["parameters"], changes["values"], strict=True):
            parameter["value"] = value
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_an_averaged_forms_members_and_weights_are_checked_when_read(fitted_law, tmp_path):
    """The default law's sets are averages (``relax/relax^q``): the reader refuses unknown
    members and weights that are not a distribution, in one line naming file and field."""
    fit = fitted_law.domain
    assert fit.form == "relax/relax^q"
    at = {name: i for i, name in enumerate(fit.parameter_names)}
    first, second = at["weight.relax"], at["weight.relax^q"]
    for form, message in (
        ("relax/bogus^q", "'bogus' is not a law form"),
        ("relax/relax", "needs two or more different members"),
        ("pretrain/relax", "'pretrain' is not a law form"),  # not a CPT form
    ):
        path = _with_domain(fitted_law, tmp_path, form=form)
        with pytest.raises(InputError, match=f"edited.json: domain.form: .*{message}"):
            load_law(path)

    def weights(a: float, b: float) -> list[float]:
        values = list(fit.values)
        values[first], values[second] = a, b
        return values

    # a NaN weight is found where every NaN of a law file is (before the fields are read)
    path = _with_domain(fitted_law, tmp_path, values=weights(float("nan"), 0.5))
    with pytest.raises(InputError, match=rf"edited.json: domain.values\[{first}\] is NaN$"):
        load_law(path)
    for a, b, message in (
        (1.2, -0.2, "must be finite and non-negative"),
        (0.5, 0.6, "sum to 1.1, not 1"),
        (0.5, 0.5 + 1e-8, "sum to 1.00000001, not 1"),
    ):
        path = _with_domain(fitted_law, tmp_path, values=weights(a, b))
        with pytest.raises(InputError, match="edited.json: domain.values: weight.relax, "):
            load_law(path)
        with pytest.raises(InputError, match=message):
            load_law(path)
    names = [name.replace("weight.relax^q", "weight.odds") for name in fit.parameter_names]
    with pytest.raises(InputError, match="domain.values: .*no weight.relax\\^q among"):
        load_law(_with_domain(fitted_law, tmp_path, parameter_names=names))
    # within 1e-9 of 1 is a distribution: JSON keeps each float, the fit normalises them
    loaded = load_law(_with_domain(fitted_law, tmp_path, values=weights(0.25, 0.75 + 1e-12)))
    assert loaded.domain.values[second] == pytest.approx(0.75, abs=1e-11)  # read as written


def test_an_averaged_law_reads_what_any_member_reads(fitted_law):
    """The inputs a law needs come from its sets' forms: an average needs the per-step LRs
    when any member's shift is driven by LR^q, whatever the stored ``lr_power`` says."""
    unmarked = {
        name: getattr(fitted_law, name).model_copy(update={"lr_power": False})
        for name in ("general", "domain")
    }
    law = fitted_law.model_copy(update=unmarked)
    assert law.form_for("domain").needs_steps and law.needs.steps
    assert law.needs.history == (law.annealing == "mpl")
    assert law.needs == fitted_law.needs
