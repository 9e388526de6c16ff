import pytest

from vtab_eval import tasks
from vtab_eval.tasks import registry


@pytest.mark.parametrize(
    "spec, name, kwargs",
    [
        ("dtd", "dtd", {}),
        ("cifar(num_classes=100)", "cifar", {"num_classes": 100}),
        (
            ' dsprites( predicted_attribute="label_x_position", num_classes=16 ) ',
            "dsprites",
            {"predicted_attribute": "label_x_position", "num_classes": 16},
        ),
        ("x(a=1.5,b=True,c=None,d='q')", "x", {"a": 1.5, "b": True, "c": None, "d": "q"}),
    ],
)
def test_parse_spec(spec, name, kwargs):
    assert tasks.parse_spec(spec) == (name, kwargs)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "non-empty"),
        ("dtd(", "not of the form"),
        ("a.b", "not of the form"),
        ("cifar(100)", "must be named"),
        ("cifar(num_classes=x)", "not a literal"),
        ("cifar(num_classes=[1])", "must be a string, number or bool"),
        ("cifar(**{'a': 1})", r"\*\*kwargs"),
    ],
)
def test_parse_spec_errors_name_the_spec(spec, message):
    with pytest.raises(ValueError, match=message) as e:
        tasks.parse_spec(spec)
    assert repr(spec) in str(e.value)


def test_format_spec_round_trips():
    for spec in tasks.suite_specs("vtab1k") + tasks.suite_specs("embedded"):
        name, kwargs = tasks.parse_spec(spec)
        assert tasks.format_spec(name, kwargs) == spec
    assert tasks.format_spec("t", {"s": 'a"b\\c'}) == 't(s="a\\"b\\\\c")'
    assert tasks.parse_spec(tasks.format_spec("t", {"s": 'a"b\\c'}))[1] == {"s": 'a"b\\c'}


def test_unknown_task_and_argument_errors():
    with pytest.raises(ValueError, match="unknown task 'nope' in spec 'nope\\(a=1\\)'"):
        tasks.get_task("nope(a=1)")
    with pytest.raises(ValueError, match="unknown argument 'colour' for 'clevr'; allowed: task"):
        tasks.get_task('clevr(task="count_all",colour=1)')
    # Loading options are flags of get_task, never part of a spec.
    with pytest.raises(ValueError, match="unknown argument 'data_dir'"):
        tasks.get_task('dtd(data_dir="/x")')
    with pytest.raises(ValueError, match="unknown suite 'vtab2k'"):
        tasks.suite_specs("vtab2k")


def test_bad_argument_values_are_named():
    with pytest.raises(ValueError, match="cifar: num_classes must be 10 or 100, got 7"):
        tasks.get_task("cifar(num_classes=7)")
    with pytest.raises(ValueError, match="clevr: unknown task 'count_cubes'"):
        tasks.get_task('clevr(task="count_cubes")')
    with pytest.raises(ValueError, match="kitti: unknown task"):
        tasks.get_task('kitti(task="count_all_x")')
    with pytest.raises(ValueError, match="predicted_attribute 'label_colour' is not one of"):
        tasks.get_task('dsprites(predicted_attribute="label_colour")')
    with pytest.raises(
        ValueError, match=r"num_classes=64 for label_x_position must be in \[2, 32\]"
    ):
        tasks.get_task('dsprites(predicted_attribute="label_x_position",num_classes=64)')
    with pytest.raises(ValueError, match="config must be one of"):
        tasks.get_task('mini_mnist(config="huge")')


def test_suites_list_the_papers_tasks_by_group():
    vtab = tasks.get_suite("vtab1k", data_dir="/nonexistent")  # Listing reads no data.
    assert len(vtab) == 19
    groups = [t.group for t in vtab]
    assert (groups.count("natural"), groups.count("specialized"), groups.count("structured")) == (
        7,
        4,
        8,
    )
    assert {t.spec: t.num_classes for t in vtab} == {
        "caltech101": 102,
        "cifar(num_classes=100)": 100,
        "dtd": 47,
        "oxford_flowers102": 102,
        "oxford_iiit_pet": 37,
        "sun397": 397,
        "svhn": 10,
        "patch_camelyon": 2,
        "eurosat": 10,
        "resisc45": 45,
        'diabetic_retinopathy(config="btgraham-300")': 5,
        'clevr(task="count_all")': 8,
        'clevr(task="closest_object_distance")': 6,
        "dmlab": 6,
        'kitti(task="closest_vehicle_distance")': 4,
        'dsprites(predicted_attribute="label_x_position",num_classes=16)': 16,
        'dsprites(predicted_attribute="label_orientation",num_classes=16)': 16,
        'smallnorb(predicted_attribute="label_azimuth")': 18,
        'smallnorb(predicted_attribute="label_elevation")': 9,
    }
    embedded = tasks.get_suite("embedded", data_dir="/nonexistent")
    groups = [t.group for t in embedded]
    assert (groups.count("natural"), groups.count("specialized"), groups.count("structured")) == (
        5,
        2,
        6,
    )
    assert set(tasks.suite_names()) == {"vtab1k", "embedded"}


def test_register_refuses_duplicates():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("dtd")(lambda canonical, **opts: None)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_suite("vtab1k", ())


def test_unknown_split_is_refused():
    task = tasks.get_task("dtd", data_dir="/nonexistent")
    with pytest.raises(ValueError, match="unknown split 'train'"):
        task.as_dataset("train")


def test_a_suite_splits_on_semicolons_outside_quotes():
    from vtab_eval.tasks.spec import split_specs

    text = "mini_mnist; image_folder(path=\"a;b\") ;; image_folder(path='c\\';d')"
    assert split_specs(text) == [
        "mini_mnist",
        'image_folder(path="a;b")',
        "image_folder(path='c\\';d')",
    ]
