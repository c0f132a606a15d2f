import pytest

from raydl.registry import Registry, RegistryError


def test_register_and_get():
    reg: Registry = Registry("widget")

    @reg.register("round")
    def round_widget():
        return "round"

    assert reg.get("round")() == "round"
    assert reg.names() == ["round"]
    assert "round" in reg


def test_duplicate_is_refused():
    reg: Registry = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(RegistryError, match="widget 'a' is already registered"):
        reg.register("a")(lambda: 2)


def test_unknown_name_lists_close_matches_and_all():
    reg: Registry = Registry("widget")
    for name in ("resnet", "resnet18", "mlp"):
        reg.register(name)(lambda: None)
    with pytest.raises(RegistryError) as e:
        reg.get("resnt")
    msg = str(e.value)
    assert msg.startswith("unknown widget 'resnt'; did you mean 'resnet'")
    assert "available: mlp, resnet, resnet18" in msg
    assert "did you mean" not in reg.unknown_message("zzz")


def test_module_function_loads_user_code():
    reg: Registry = Registry("widget")
    assert reg.get("os.path:join")("a", "b") == "a/b"
    with pytest.raises(RegistryError, match="has no 'nope'"):
        reg.get("os.path:nope")
    with pytest.raises(RegistryError, match="is not callable"):
        reg.get("os.path:sep")
    with pytest.raises(RegistryError, match="expected 'module:function'"):
        reg.get("os.path:")


def test_declared_members_are_known_without_importing_their_module(tmp_path, monkeypatch):
    """A family names a member by module; the module is imported on first get() only."""
    import sys
    import types

    reg: Registry = Registry("widget")
    (tmp_path / "lazy_widgets.py").write_text(
        "from lazy_family import REG\n@REG.register('square')\ndef square():\n    return 'square'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "lazy_family", types.SimpleNamespace(REG=reg))
    reg.declare("square", "lazy_widgets", info={"sides": 4})
    assert reg.names() == ["square"] and "square" in reg
    assert reg.check("square") is None and reg.info("square") == {"sides": 4}
    assert "lazy_widgets" not in sys.modules  # known, checked, described: not imported
    assert reg.get("square")() == "square"
    assert "lazy_widgets" in sys.modules
    monkeypatch.delitem(sys.modules, "lazy_widgets")


def test_a_declared_name_belongs_to_its_module():
    reg: Registry = Registry("widget")
    reg.declare("round", "some.module")
    with pytest.raises(RegistryError, match="already declared"):
        reg.declare("round", "other.module")
    with pytest.raises(RegistryError, match="widget 'round' belongs to some.module"):
        reg.register("round")(lambda: None)  # defined here, in tests.unit.test_registry
    assert reg.check("rund").startswith("unknown widget 'rund'; did you mean 'round'?")
    with pytest.raises(RegistryError, match="unknown widget"):
        reg.info("rund")
