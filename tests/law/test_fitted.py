"""The law file, schema 4: each set's form and LR power, the domain forward area, the corpus
size, the areas a law builds for ``predict``, and laws of pre-training pilots (``kind``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cptopt.exceptions import InputError, SchemaVersionError
from cptopt.law.fitted import SCHEMA_VERSION, FittedLaw, load_law


def test_schema_4_round_trip(fitted_law, tmp_path):
    assert SCHEMA_VERSION == 4 and fitted_law.kind == "cpt"
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


def test_schema_3_files_still_load_as_cpt_laws(fitted_law, tmp_path):
    data = json.loads(fitted_law.model_dump_json())
    data["schema_version"] = 3
    del data["kind"]  # version 3 had no kind: every law was a CPT law
    path = tmp_path / "v3.json"
    path.write_text(json.dumps(data))
    loaded = load_law(path)
    assert loaded.kind == "cpt" and loaded.schema_version == SCHEMA_VERSION
    assert loaded.model_copy(update={"schema_version": 4}) == fitted_law


def test_a_law_file_says_what_it_was_fitted_to(fitted_law, tmp_path):
    data = json.loads(fitted_law.model_dump_json())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**data, "kind": "pretrain"}))
    with pytest.raises(InputError, match="bad.json: .*pre-training law has form 'pretrain'"):
        load_law(path)
    path.write_text(json.dumps({**data, "domain": None}))
    with pytest.raises(InputError, match="a CPT law needs 'domain' and 'pretrain'"):
        load_law(path)


def test_a_pretraining_law_has_one_set_and_refuses_cpt_use(pretrain_law):
    assert pretrain_law.kind == "pretrain" and pretrain_law.validation_sets == ("general",)
    assert pretrain_law.domain is None and pretrain_law.pretrain is None
    assert pretrain_law.set_fits == [pretrain_law.general]
    with pytest.raises(InputError, match="no domain set: it was fitted to pre-training pilots"):
        pretrain_law.set_fit("domain")
    with pytest.raises(InputError, match="law.json: kind: recommend needs a CPT law"):
        pretrain_law.require_cpt("recommend", "law.json")
    with pytest.raises(InputError, match="needs a CPT law"):
        pretrain_law.checkpoint_state(None)
    again = FittedLaw.model_validate_json(pretrain_law.model_dump_json())
    assert again == pretrain_law and again.form_for("general").name == "pretrain"


def test_older_schema_is_refused(fitted_law, tmp_path):
    data = json.loads(fitted_law.model_dump_json())
    data["schema_version"] = 2
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError, match="refit"):
        load_law(path)


def test_point_areas_discount_repeated_domain_data(fitted_law):
    law = fitted_law.model_copy(update={"domain_tokens": 300_000.0})
    _, state = law.checkpoint_state(None)
    lr = np.full(2000, 1e-3)
    steps = np.array([0, 200, 2000])
    areas = law.point_areas(lr, steps, state, 0.25, tokens_per_step=1024)
    # 2000 steps x 0.75 x 1024 tokens: ~5 epochs of a 300k-token corpus
    assert areas.s1_shift[1] == areas.s1_cpt[1]  # the first epoch is fresh
    assert areas.s1_shift[2] < areas.s1_cpt[2]
    fresh = fitted_law.point_areas(lr, steps, state, 0.25, tokens_per_step=1024)
    np.testing.assert_array_equal(fresh.s1_shift, fresh.s1_cpt)  # corpus size unknown
    override = fitted_law.point_areas(lr, steps, state, 0.25, 1024, domain_tokens=300_000.0)
    np.testing.assert_array_equal(override.s1_shift, areas.s1_shift)
