"""The registry behind every `@register`: names, order, duplicates, unknown names."""

import pytest

from fanout.registry import Registry, UnknownName


def _registry():
    things = Registry("widget")

    @things.register
    class Second:
        name = "second"

    @things.register
    class First:
        name = "first"

    return things, Second, First


def test_classes_register_under_their_name_in_registration_order():
    things, second, first = _registry()
    assert list(things) == ["second", "first"] and len(things) == 2
    assert things["first"] is first and things["second"] is second
    assert "first" in things and "third" not in things and things.get("third") is None
    assert things.where(lambda cls: cls.__name__ == "First") == ["first"]
    things.remove("second")
    assert list(things) == ["first"]


def test_a_duplicate_name_is_refused():
    things, _, _ = _registry()

    class Again:
        name = "first"

    with pytest.raises(ValueError, match="widget 'first' is registered twice"):
        things.register(Again)
    assert things["first"].__name__ == "First"


def test_an_unknown_name_is_one_line_listing_the_known_ones():
    things, _, _ = _registry()
    with pytest.raises(UnknownName) as error:
        things["third"]
    assert str(error.value) == "unknown widget 'third'; choose from second, first"
    assert isinstance(error.value, ValueError) and isinstance(error.value, KeyError)
    with pytest.raises(UnknownName, match="choose from none registered"):
        Registry("gadget")["x"]


def test_a_class_without_a_name_is_refused():
    class Nameless:
        pass

    with pytest.raises(TypeError, match="no `name`"):
        Registry("widget").register(Nameless)
