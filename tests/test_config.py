from pathlib import Path

import pytest
import yaml

from ferkit.api import check_config
from ferkit.config import ConfigError, RunConfig, config_from_dict, load_config, to_dict


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
