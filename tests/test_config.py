from pathlib import Path

import pytest
import yaml

from ferkit.checks import check_config, load_config
from ferkit.config import ConfigError, RunConfig, config_from_dict, to_dict


def test_defaults_recipe_then_overrides(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {epochs: 7}\noptim: {lr: 0.01}\nmethod: {name: cb, params: {beta: 0.99}}\n")
    cfg = load_config(recipe, ["train.epochs=3", "method.params.loss=focal"])
    assert cfg.train.epochs == 3  # override wins over recipe
    assert cfg.optim.lr == 0.01  # recipe wins over default
    assert cfg.optim.name == "adam"  # default
    assert cfg.method.params == {"beta": 0.99, "loss": "focal"}  # params merged key by key


def test_unknown_keys_and_bad_values_reported_together(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("train: {epocs: 3}\noptim: {name: adan}\ndata: {batch_size: -1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(recipe)
    text = str(info.value)
    assert "bad.yaml" in text
    assert "unknown config key 'train.epocs'. Did you mean 'epochs'?" in text
    assert "optim.name: 'adan' is not one of" in text and "Did you mean 'adam'?" in text
    assert "data.batch_size: must be > 0, got -1" in text


def test_type_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train.epochs: expected int, got 'many'"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="is not key=value"):
        load_config(None, ["train.epochs"])


def test_unknown_method_param_is_rejected_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'cb' has no parameter 'bta'. Did you mean 'beta'\?"):
        load_config(None, ["method.name=cb", "method.params.bta=0.9"])
    cfg = load_config(None, ["method.name=cb", "method.params.bta=0.9"], registries=False)
    with pytest.raises(ConfigError, match=r"'cb' has no parameter 'bta'. Did you mean 'beta'\?"):
        check_config(cfg)


def test_unknown_method_and_backbone() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.name=cee", "model.backbone=resnet19"])
    assert "unknown method 'cee'" in str(info.value)
    assert "unknown backbone 'resnet19'. Did you mean 'resnet18'?" in str(info.value)


def test_round_trip_through_yaml() -> None:
    cfg = load_config(None, ["data.mean=[0.5, 0.5, 0.5]", "train.grad_clip=5"])
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    assert again == cfg
    assert isinstance(again.data.mean, tuple) and again.train.grad_clip == 5.0
    assert RunConfig(output_dir="runs/default/ce") == load_config(None, [])


def test_recipes_in_configs_folder_load() -> None:
    recipes = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert recipes, "configs/ has no recipes"
    for recipe in recipes:
        cfg = load_config(recipe)
        check_config(cfg)


# One bad value per rule: every numeric setting has a checked range.
BAD_VALUES = {
    "data.image_size": 0, "data.batch_size": 0, "data.eval_batch_size": 0,
    "data.imbalance_factor": 0.5, "data.imbalance_seed": -1, "data.imbalance_max": 0,
    "data.val_fraction": 1.0, "data.val_seed": -1, "data.mean": [0.5, 2, 0.5],
    "data.std": [0.2, 0, 0.2], "data.augment.crop_scale": [0.9, 0.5],
    "data.augment.crop_ratio": [0, 1], "data.augment.pad_fraction": 0.5,
    "data.augment.flip": 1.5, "data.augment.erasing": -0.1, "data.augment.erasing_scale": [0, 2],
    "data.augment.noise": 2, "data.augment.noise_std": -1, "data.augment.brightness": 1.5,
    "data.augment.contrast": -1, "model.drop_rate": 1.0, "optim.lr": 0,
    "optim.lr_batch_reference": 0, "optim.weight_decay": -1e-4, "optim.momentum": 1.0,
    "optim.betas": [0.9, 1.0], "optim.gamma": -1, "optim.warmup_steps": -1, "optim.min_lr": -1,
    "train.epochs": 0, "train.grad_clip": -1, "train.max_steps_per_epoch": 0, "train.steps": 0,
    "data.augment.saturation": 1.5, "data.augment.randaugment_ops": -1,
    "data.augment.randaugment_magnitude": -1, "data.augment.randaugment_bins": 1,
    "train.eval_every": 0, "train.num_threads": 0, "seed": -1, "train.cam_diagnostics": -1,
}


def _fields(cls: type, prefix: str = "") -> dict[str, object]:
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_fields(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = hints[f.name]
    return out


def test_every_setting_is_checked() -> None:
    from ferkit.config import CHOICES, RULES

    numeric = {k for k, hint in _fields(RunConfig).items()
               if any(t in (int, float) for t in (hint, *typing_args(hint)))}
    assert numeric - set(RULES) - set(CHOICES) == set()
    assert set(BAD_VALUES) == set(RULES)
    overrides = [f"{k}={v}" for k, v in BAD_VALUES.items()]
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides + ["train.device=gpu"])
    text = str(info.value)
    for key in BAD_VALUES:
        assert f"\n  - {key}: must be " in text, key
    assert "train.device: 'gpu' is not auto, cpu, mps, cuda or cuda:N" in text
    assert f"({len(BAD_VALUES) + 1} problems)" in text


def typing_args(hint: object) -> tuple[object, ...]:
    import typing

    args = typing.get_args(hint)
    return tuple(a for arg in args for a in (arg, *typing.get_args(arg)))


def test_issue_values_that_reversed_training() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["optim.gamma=-1", "train.grad_clip=-1", "optim.lr=.nan",
                           "train.eval_every=0", "data.eval_batch_size=0", "method.name=mekk"])
    text = str(info.value)
    assert "optim.gamma: must be in (0, 1], got -1.0 (--set)" in text
    assert "train.grad_clip: must be > 0 or null (no clipping), got -1.0 (--set)" in text
    assert "optim.lr: must be a finite number, got nan (--set)" in text
    assert "train.eval_every: must be > 0, got 0 (--set)" in text
    assert "data.eval_batch_size: must be > 0, got 0 (--set)" in text
    assert "method.name: unknown method 'mekk'. Did you mean 'mek'?" in text  # same report
    with pytest.raises(ConfigError, match=r"optim.lr: must be a finite number, got inf"):
        load_config(None, ["optim.lr=.inf"])


def test_float_written_1e_minus_3_is_a_float(tmp_path: Path) -> None:
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == 0.001
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim: {lr: 3e-4, betas: [9e-1, 0.999]}\n")
    cfg = load_config(recipe)
    assert cfg.optim.lr == 0.0003 and cfg.optim.betas == (0.9, 0.999)
    with pytest.raises(ConfigError, match=r"optim.lr: expected float, got 'fast' \(--set\)"):
        load_config(None, ["optim.lr=fast"])


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "dup.yaml"
    recipe.write_text("train:\n  epochs: 3\noptim: {lr: 0.1}\ntrain:\n  amp: none\n")
    with pytest.raises(ConfigError, match=rf"{recipe}: not valid YAML: .*duplicate key 'train' "
                                          r"\(line 4; first on line 1\)"):
        load_config(recipe)
    with pytest.raises(ConfigError, match=r"--set data.options=\{a: 1, a: 2\}: .*duplicate key"):
        load_config(None, ["data.options={a: 1, a: 2}"])


def test_errors_name_where_each_value_was_set(tmp_path: Path) -> None:
    recipe = tmp_path / "x.yaml"
    recipe.write_text("optim: {gamma: 2}\n")
    with pytest.raises(ConfigError) as info:
        load_config(recipe, ["trian.epochs=3", "data.batch_size=0"])
    text = str(info.value)
    assert f"optim.gamma: must be in (0, 1], got 2.0 (in {recipe})" in text
    assert "unknown config key 'trian'. Did you mean 'train'?" in text
    typo = next(line for line in text.splitlines() if "'trian'" in line)
    assert typo.endswith("(--set)") and str(recipe) not in typo
    assert "data.batch_size: must be > 0, got 0 (--set)" in text


def test_binary_yaml_file_is_one_clear_error(tmp_path: Path) -> None:
    recipe = tmp_path / "model.yaml"
    recipe.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ConfigError, match=rf"{recipe}: not a text \(UTF-8\) YAML file: byte 0"):
        load_config(recipe)


def test_a_config_is_checked_once_and_again_after_a_change(monkeypatch) -> None:
    from ferkit import checks

    cfg = load_config(None, ["train.epochs=2"])
    assert checks.was_checked(cfg)
    assert not checks.was_checked(RunConfig())  # built in Python: ferkit.train checks it
    assert not checks.was_checked(load_config(None, [], registries=False))
    seen: list[RunConfig] = []
    monkeypatch.setattr(checks, "check_config", seen.append)
    checks.ensure_checked(cfg)
    assert seen == []  # load_config's check stands
    cfg.train.epochs = 0
    checks.ensure_checked(cfg)
    assert seen == [cfg]
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="train.epochs: must be > 0, got 0"):
        checks.ensure_checked(cfg)
    cfg.train.epochs = 3
    checks.ensure_checked(cfg)
    assert checks.was_checked(cfg)


def test_train_checks_a_config_built_in_python(tmp_path: Path) -> None:
    import dataclasses

    from ferkit import api

    cfg = RunConfig(output_dir=str(tmp_path / "run"))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=0))
    with pytest.raises(ConfigError, match="train.epochs: must be > 0, got 0"):
        api.train(cfg)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_randaugment_magnitude_is_checked_against_its_scale() -> None:
    with pytest.raises(ConfigError, match=r"data.augment.randaugment_magnitude: must be below "
                                          r"data.augment.randaugment_bins \(10\), got 10 \(--set\)"):
        load_config(None, ["data.augment.randaugment_bins=10", "data.augment.randaugment_magnitude=10"])
    load_config(None, ["data.augment.randaugment_bins=10", "data.augment.randaugment_magnitude=9"])
