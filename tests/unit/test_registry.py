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
