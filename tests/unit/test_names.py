"""Class names as the data names them (raydl.names)."""

import numpy as np

from raydl.names import FASHION_MNIST, class_names


def test_fashion_mnist_ids_get_their_published_names():
    assert class_names(np.arange(10), "fashion_mnist") == list(FASHION_MNIST)
    assert class_names([0, 1], "fashion_mnist")[:2] == ["T-shirt/top", "Trouser"]
    # a data report's keys are the ids as text
    assert class_names(["9", "3"], "fashion_mnist") == ["Ankle boot", "Dress"]


def test_other_labels_keep_the_names_the_data_gives():
    assert class_names(["yes", "no"]) == ["yes", "no"]  # a CSV's label strings
    assert class_names(np.arange(3), "digits") == ["0", "1", "2"]  # digits' names are the digits
    assert class_names([np.int64(4)]) == ["4"]
    assert class_names(["tshirt", "boot"], "fashion_mnist") == ["tshirt", "boot"]  # folder names stay


def test_the_terminals_confusion_matrix_shows_whole_names():
    import io

    from rich.console import Console

    from raydl.progress import Display

    out = io.StringIO()
    cm = (np.eye(10, dtype=int) * 50 + 1).tolist()
    Display(Console(file=out, width=100)).metrics(
        {"classes": list(FASHION_MNIST), "confusion_matrix": cm}, "classification"
    )
    text = out.getvalue()
    assert "0 T-shirt/top" in text and "9 Ankle boot" in text and "by row number" in text
    assert all(len(line) <= 100 for line in text.splitlines())  # ten long names still fit


def test_a_jobs_names_come_from_its_source():
    from raydl.names import names_by_value, names_for
    from raydl.spec import validate_spec

    def job(source, task="classification", label="y"):
        raw = {
            "name": "t",
            "data": {"source": source, "task": task, "label": label},
            "model": {"arch": "mlp"},
        }
        return validate_spec(raw, local_paths=False)

    fashion = job({"type": "builtin", "name": "fashion_mnist"}, label="label")
    assert names_for(fashion, [0, 9]) == ["T-shirt/top", "Ankle boot"]
    assert names_by_value(fashion, [0, 9]) == {"0": "T-shirt/top", "9": "Ankle boot"}
    assert names_for(job({"type": "csv", "path": "x.csv"}), ["no", "yes"]) == ["no", "yes"]
    assert names_for(job({"type": "csv", "path": "x.csv"}, "regression"), None) is None
