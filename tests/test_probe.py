"""Linear probe: scikit-learn parity, binary mode, cross-validation, jit, determinism, bad inputs, the binary."""

import csv
import json

import jax
import numpy as np
import pytest
from binaries import run
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.metrics import precision_recall_curve as sk_pr_curve

import research
from research import data, probe, saved
from research.data import tabular


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


def objective(x, y, coef_dc, b_c, C):
    z = x.astype(np.float64) @ coef_dc + b_c
    ce = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(len(y)), y]
    return C * ce.sum() + 0.5 * np.sum(coef_dc.astype(np.float64) ** 2)


def test_multinomial_matches_sklearn_on_digits(digits):
    train, test = digits
    ours = probe.fit(train.x, train.y, C=1.0, max_iter=500)
    ref = LogisticRegression(C=1.0, max_iter=500).fit(train.x, train.y)
    acc = float(np.mean(np.asarray(probe.predict(ours.params, test.x)) == test.y))
    assert abs(acc - ref.score(test.x, test.y)) <= 0.005
    assert bool(ours.converged)
    # Same objective: our reported loss is the formula, and within the tolerance of scikit-learn's optimum.
    w, b = np.asarray(ours.params.W_dc), np.asarray(ours.params.b_c)
    np.testing.assert_allclose(float(ours.loss), objective(train.x, train.y, w, b, 1.0), rtol=1e-5)
    assert float(ours.loss) <= objective(train.x, train.y, ref.coef_.T, ref.intercept_, 1.0) * (1 + 1e-3)
    p = np.asarray(probe.predict_proba(ours.params, test.x))
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, ref.predict_proba(test.x), atol=0.05)


def test_binary_matches_sklearn(digits):
    train, test = digits
    y01 = (train.y == 5).astype(int)
    ours = probe.fit(train.x, y01, C=1.0, binary=True, max_iter=500)
    ref = LogisticRegression(C=1.0, max_iter=500).fit(train.x, y01)
    assert ours.params.W_dc.shape == (64, 1)
    z = np.asarray(probe.decision_function(ours.params, test.x))
    assert z.shape == (len(test.x),)
    np.testing.assert_allclose(z, ref.decision_function(test.x), atol=0.2)
    np.testing.assert_array_equal(np.asarray(probe.predict(ours.params, test.x)), (z > 0).astype(int))
    p = np.asarray(probe.predict_proba(ours.params, test.x))
    np.testing.assert_allclose(p, ref.predict_proba(test.x), atol=0.02)


def test_adam_reaches_the_lbfgs_objective(digits):
    train, _ = digits
    lb = probe.fit(train.x, train.y, C=1.0, max_iter=500, tol=1e-5)
    ad = probe.fit(train.x, train.y, C=1.0, solver="adam", max_iter=1500, learning_rate=0.05, tol=1e-5)
    assert float(ad.loss) == pytest.approx(float(lb.loss), rel=2e-3)


def test_report_and_curve_match_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[:5] = 3
    rep = probe.report(y, pred, 5)  # class 4 absent: zero rows, zero scores
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(5), zero_division=0)
    for a, b in ((rep["precision"], p), (rep["recall"], r), (rep["f1"], f), (rep["support"], s)):
        np.testing.assert_allclose(a, b)
    np.testing.assert_array_equal(rep["confusion"], confusion_matrix(y, pred, labels=range(5)))
    assert rep["accuracy"] == pytest.approx(np.mean(y == pred))
    y01 = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(size=300) + y01, 1)  # ties
    for ours, ref in zip(probe.precision_recall_curve(y01, scores), sk_pr_curve(y01, scores)):
        np.testing.assert_allclose(ours, ref)


def test_cross_validate_folds_and_weights(digits):
    train, _ = digits
    x, y = train.x, train.y  # the parity test's shapes: no new compilation
    cv = probe.cross_validate(jax.random.key(0), x, y, 4, C=1.0, max_iter=100)
    assert cv.accuracy.shape == cv.precision.shape == cv.recall.shape == (4,)
    assert set(np.unique(cv.fold_n)) == {0, 1, 2, 3} and cv.scores_n.shape == (1500, 10)
    assert 0.9 < cv.accuracy.mean() <= 1
    for c in range(10):  # stratified: each class spread evenly over the folds
        counts = np.bincount(cv.fold_n[y == c], minlength=4)
        assert counts.max() - counts.min() <= 1
    for f in range(4):
        held = cv.fold_n == f
        assert cv.accuracy[f] == pytest.approx(np.mean(cv.predictions_n[held] == y[held]))
    # A fold's zero-weight fit is the fit on the other folds alone: it predicts as scikit-learn fitted on them.
    held = cv.fold_n == 0
    ref = LogisticRegression(C=1.0, max_iter=500).fit(x[~held], y[~held])
    assert np.mean(cv.predictions_n[held] == ref.predict(x[held])) > 0.97
    # Same key, same folds; another key, other folds.
    np.testing.assert_array_equal(probe._stratified_folds(jax.random.key(0), y, 4), cv.fold_n)
    assert not np.array_equal(probe._stratified_folds(jax.random.key(1), y, 4), cv.fold_n)


def test_cross_validate_augment_trains_only_on_training_copies(digits):
    train, _ = digits
    x, y01 = train.x[:750], (train.y[:750] == 3).astype(int)
    # Two identical copies of every row weigh each training sample twice: C doubles. A held-out row's
    # copy leaking into training would change the scores. (1500 rows: the binary parity test's shapes.)
    twice = probe.cross_validate(jax.random.key(2), x, y01, 3, binary=True, augment=lambda a: np.concatenate([a, a]))
    ref = probe.cross_validate(jax.random.key(2), x, y01, 3, binary=True, C=2.0)
    # Both fits stop at the solver's tolerance, which leaves scores apart by up to ~0.02; a leaked copy would
    # move its row's score far more.
    np.testing.assert_allclose(twice.scores_n, ref.scores_n, atol=3e-2)
    assert twice.scores_n.shape == (750,) and 0.9 < twice.accuracy.mean() <= 1.0
    assert np.all(twice.precision > 0) and np.all(twice.recall > 0)
    # The tolerance does catch a leak: the same folds fitted with the second copy of every row trained on, the
    # held-out rows' copies included, move most scores by far more than 3e-2.
    x2, y2 = np.concatenate([x, x]), np.tile(y01, 2)
    leaked = np.zeros_like(ref.scores_n)
    for f in range(3):
        held = ref.fold_n == f
        weight = np.concatenate([~held, np.ones_like(held)]).astype(np.float32)
        fitted = probe.fit(x2, y2, binary=True, sample_weight=weight)
        leaked[held] = np.asarray(probe.decision_function(fitted.params, x[held]))
    moved = np.abs(leaked - ref.scores_n)
    assert moved.max() > 10 * 3e-2 and np.mean(moved > 3e-2) > 0.5


def test_jit_equals_no_jit_and_determinism(digits):
    train, _ = digits
    # The parity test's shapes, so the jitted side is already compiled; eager runs 3 iterations.
    args, static = probe._prepare(train.x, train.y, 1.0, "lbfgs", 3, 1e-4, False, 1e-2, None, None)
    jitted = probe._fit(*args, **static)
    with jax.disable_jit():
        eager = probe._fit(*args, **static)
    np.testing.assert_allclose(np.asarray(jitted.params.W_dc), np.asarray(eager.params.W_dc), atol=1e-4)
    assert int(jitted.n_iter) == int(eager.n_iter)
    again = probe._fit(*args, **static)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_compiles_once_across_hyperparameters(digits):
    train, _ = digits
    x, y = train.x, train.y  # the parity test's shapes
    probe.fit(x, y, C=1.0, max_iter=5)
    before = probe._fit._cache_size()
    probe.fit(x, y, C=3.0, max_iter=7, tol=1e-3)
    assert probe._fit._cache_size() == before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": [[np.nan, 1.0], [0.0, 1.0]]}, "NaN or infinite"),
        ({"y": [0, 1, 0]}, "3 labels but there are 4 samples"),
        ({"y": [1, 1, 1, 1]}, "single class"),
        ({"C": 0.0}, "C must be a finite number > 0"),
        ({"C": float("nan")}, "C must be a finite number > 0"),
        ({"y": [0, 2, 0, 2]}, r"classes \[1\] of 0..2 have no samples"),
        ({"y": [0, 1, 2, 0], "binary": True}, "binary=True needs labels 0/1"),
        ({"y": [0, -1, 0, 1]}, "class indices >= 0"),
        ({"solver": "sgd"}, "solver must be one of"),
        ({"max_iter": 0}, "max_iter must be a whole number >= 1"),
        ({"sample_weight": [1.0, -1.0, 1.0, 1.0]}, "sample_weight"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = {"x": np.eye(4, 2, dtype=np.float32), "y": [0, 1, 0, 1]} | kwargs
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        probe.fit(x, y, **args)


def test_bad_inputs_elsewhere():
    params = probe.ProbeParams(np.zeros((2, 1), np.float32), np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="x has 3 features but the probe was fitted on 2"):
        probe.predict(params, np.ones((2, 3)))
    x, y = np.random.default_rng(0).random((10, 2)), np.array([0] * 8 + [1] * 2)
    with pytest.raises(ValueError, match="at least 3 samples of every class"):
        probe.cross_validate(jax.random.key(0), x, y, 3)
    with pytest.raises(ValueError, match="at least 2 folds"):
        probe.cross_validate(jax.random.key(0), x, y, 1)


def test_five_detector_scores_are_sklearns_on_the_out_of_fold_predictions(digits):
    train, _ = digits
    y01 = (train.y == 5).astype(int)  # 1500 rows: the binary parity test's shapes, compiled already
    cv = probe.cross_validate(jax.random.key(0), train.x, y01, 3, binary=True, C=1.0)
    s = probe.binary_cv_summary(cv, y01, target_precision=0.995)
    pred = cv.predictions_n  # cross_val_predict's: each row predicted by the fold that did not train on it
    np.testing.assert_array_equal(pred, (cv.scores_n > 0).astype(int))
    np.testing.assert_array_equal(s["confusion"], confusion_matrix(y01, pred))
    assert s["precision"] == pytest.approx(precision_score(y01, pred))
    assert s["recall"] == pytest.approx(recall_score(y01, pred))
    assert s["f1"] == pytest.approx(f1_score(y01, pred))
    for f in range(3):  # cross_val_score's: accuracy per fold
        held = cv.fold_n == f
        assert s["accuracy_per_fold"][f] == pytest.approx(np.mean(pred[held] == y01[held]))
    # The never-5 classifier through the same folds: right on every negative, no positive found.
    base = s["baseline_never_positive"]
    np.testing.assert_array_equal(base["confusion"], [[np.sum(y01 == 0), 0], [np.sum(y01), 0]])
    assert base["accuracy"] == pytest.approx(np.mean([1 - y01[cv.fold_n == f].mean() for f in range(3)]))
    assert s["accuracy"] > base["accuracy"] and base["precision"] == base["recall"] == 0
    # The threshold for the target precision reaches it, is above the probe's own (0: precision < 0.995 there)
    # and is the lowest that does: the next lower score's threshold falls short.
    at = s["at_target_precision"]
    assert precision_score(y01, cv.scores_n >= at["threshold"]) == pytest.approx(at["precision"])
    assert at["precision"] >= 0.995 > s["precision"] and at["threshold"] > 0
    assert at["recall"] == pytest.approx(recall_score(y01, cv.scores_n >= at["threshold"]))
    lower = cv.scores_n[cv.scores_n < at["threshold"]].max()
    assert precision_score(y01, cv.scores_n >= lower) < 0.995
    assert probe.threshold_for_precision(y01, np.zeros(1500), 0.5)["threshold"] is None  # no threshold reaches it


def test_stratified_holdout_keeps_the_class_ratios():
    y = np.repeat([0, 1, 2], [100, 30, 7])
    held = probe.stratified_holdout(jax.random.key(0), y, 0.2)
    np.testing.assert_array_equal(np.bincount(y[held]), [20, 6, 1])  # round(0.2 * n_c) of each class
    assert not np.array_equal(held, probe.stratified_holdout(jax.random.key(1), y, 0.2))
    assert np.bincount(y[probe.stratified_holdout(jax.random.key(0), y, 0.95)]).tolist() == [95, 28, 6]
    with pytest.raises(ValueError, match="holds out none"):
        probe.stratified_holdout(jax.random.key(0), np.array([0, 0, 1, 1]), 0.1)


# ---------------------------------------------------------------------------
# Tables: the Titanic walkthrough on a generated table with its columns and kinds of missing cells

TITANIC_DROP = "PassengerId,Name,Ticket,Cabin"


def titanic_like(path, n=240, seed=0):
    """PassengerId, Survived, Pclass, Name, Sex, Age (a fifth missing), SibSp, Parch, Ticket, Fare, Cabin (mostly
    missing), Embarked (2 missing). Survivors: the women of the first two classes, 5% of the labels flipped."""
    rng = np.random.default_rng(seed)
    pclass = rng.choice([1, 2, 3], n, p=[0.3, 0.3, 0.4])
    female = rng.random(n) < 0.5
    survived = (female & (pclass < 3)) ^ (rng.random(n) < 0.05)
    embarked = rng.choice(["S", "C", "Q"], n, p=[0.7, 0.2, 0.1])
    embarked[[3, 17]] = ""
    header = [
        "PassengerId",
        "Survived",
        "Pclass",
        "Name",
        "Sex",
        "Age",
        "SibSp",
        "Parch",
        "Ticket",
        "Fare",
        "Cabin",
        "Embarked",
    ]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            age = "" if rng.random() < 0.2 else round(rng.uniform(1, 70), 1)
            fare = round(rng.uniform(5, 15) * (4 - pclass[i]) ** 2, 2)
            cabin = f"C{i}" if rng.random() < 0.2 else ""
            name = f"Person{i}, {'Mrs' if female[i] else 'Mr'}. A"
            sex = "female" if female[i] else "male"
            sibsp, parch, ticket = rng.integers(0, 4), rng.integers(0, 3), f"T{rng.integers(1000, 9999)}"
            w.writerow(
                [i + 1, int(survived[i]), pclass[i], name, sex, age, sibsp, parch, ticket, fare, cabin, embarked[i]]
            )
    return path


def test_table_preprocessing_is_fitted_on_the_rows_given(tmp_path):
    path = titanic_like(tmp_path / "t.csv")
    t = tabular.read_table(path, "Survived", TITANIC_DROP.split(","), categorical_columns=["Pclass"])
    assert t.numeric == ("Age", "SibSp", "Parch", "Fare") and t.categorical == ("Pclass", "Sex", "Embarked")
    assert t.classes == ("0", "1")
    rows = np.arange(240) < 150
    tf = tabular.fit_transform(t, rows)
    ages = t.cells[rows, 0].astype(float)
    embarked = [e for e in t.cells[rows, 6] if e is not None]
    fills = tabular.fill_values(tf, t)
    assert fills["Age"] == np.nanmedian(ages) != np.nanmedian(t.cells[:, 0].astype(float))
    assert fills["Embarked"] == max(set(embarked), key=embarked.count) == "S"
    names = tabular.feature_names(tf, t)
    assert names == ["Age", "SibSp", "Parch", "Fare", "Pclass=1", "Pclass=2", "Pclass=3", "Sex=female", "Sex=male"] + [
        "Embarked=C",
        "Embarked=Q",
        "Embarked=S",
    ]
    x = tabular.transform_rows(tf, t, rows)
    np.testing.assert_allclose(x[:, 0].mean(), 0, atol=1e-5)  # scaled with these rows' statistics
    np.testing.assert_array_equal(x[:, 4:7].sum(1), 1)  # one class each, every row
    missing = [i for i in range(150) if t.cells[i, 6] is None]
    assert len(missing) == 2 and np.all(x[missing, names.index("Embarked=S")] == 1)  # the most frequent
    with pytest.raises(ValueError, match="cannot be categorical too"):
        tabular.read_table(path, "Survived", ["Name"], categorical_columns=["Name"])


def test_a_saved_table_preprocessing_reads_new_tables_as_in_training(tmp_path):
    path = titanic_like(tmp_path / "titanic.csv")
    t = tabular.read_table(path, "Survived", TITANIC_DROP.split(","), categorical_columns=["Pclass"])
    rows = np.arange(len(t.y)) < 150
    tf = tabular.fit_transform(t, rows)
    state = json.loads(json.dumps(tabular.transform_state(tf, t, "Survived")))  # survives JSON
    x, y = tabular.apply_state(state, path)
    np.testing.assert_allclose(x, tabular.transform_rows(tf, t), rtol=1e-6, atol=1e-6)  # every row, as fitted
    np.testing.assert_array_equal(y, t.y)
    new = tmp_path / "new.csv"  # columns reordered, extra id column, a missing age, an unseen port, no label
    new.write_text("Embarked,Sex,Pclass,Fare,Parch,SibSp,Age,Id\nZ,female,2,10.5,0,1,,7\n")
    x1, y1 = tabular.apply_state(state, new)
    names = tabular.feature_names(tf, t)
    assert y1 is None and x1.shape == (1, len(names))
    assert x1[0, names.index("Age")] == pytest.approx((state["median"][0] - state["mean"][0]) / state["scale"][0])
    assert x1[0, [names.index(f"Embarked={c}") for c in "CQS"]].tolist() == [0, 0, 0]  # unseen: all zeros
    assert x1[0, names.index("Pclass=2")] == 1 and x1[0, names.index("Sex=female")] == 1
    new.write_text("Sex,Pclass,Fare,Parch,SibSp,Age\nmale,1,3,0,0,40\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['Embarked'\]"):
        tabular.apply_state(state, new)
    new.write_text("Embarked,Sex,Pclass,Fare,Parch,SibSp,Age\nS,male,1,cheap,0,0,40\n")
    with pytest.raises(ValueError, match="'Fare' was numeric in training, but data row 1 holds 'cheap'"):
        tabular.apply_state(state, new)
    new.write_text("Embarked,Sex,Pclass,Fare,Parch,SibSp,Age,Survived\nS,male,1,3,0,0,40,2\n")
    with pytest.raises(ValueError, match=r"values the run never saw: \['2'\]"):
        tabular.apply_state(state, new)


def test_linear_probe_binary_on_a_titanic_like_table(tmp_path):
    path, wd = titanic_like(tmp_path / "titanic.csv"), tmp_path / "w"
    flags = ["--label_column=Survived", f"--drop_columns={TITANIC_DROP}", "--categorical_columns=Pclass"]
    args = ["experiments.linear_probe", f"--dataset=csv:{path}", *flags, "--test_fraction=0.25", f"--workdir={wd}"]
    out = run([*args, "--seed=3"], tmp_path)
    res = json.loads((wd / "results.json").read_text())
    t = tabular.read_table(path, "Survived", TITANIC_DROP.split(","), categorical_columns=["Pclass"])
    # The stratified hold-out: a quarter of each class, as the binary draws it from the seed.
    held = probe.stratified_holdout(jax.random.fold_in(jax.random.key(3), 1), t.y, 0.25)
    assert res["n_test"] == held.sum() == 60 and res["n_train"] == 180
    conf, cv = np.array(res["confusion"]), res["cv"]
    np.testing.assert_array_equal(conf.sum(1), np.bincount(t.y[held]))  # the test rows' classes, by row
    assert abs(conf.sum(1)[1] / 60 - res["train_positive_fraction"]) < 1 / 60  # same survival rate
    assert np.array(cv["confusion"]).sum() == 180 and cv["folds"] == 3
    # Imputation fitted on the training rows only: Age's median, Embarked's most frequent value.
    ages = t.cells[~held, t.numeric.index("Age")].astype(float)
    assert res["fill_values"]["Age"] == pytest.approx(np.nanmedian(ages)) and res["fill_values"]["Embarked"] == "S"
    assert res["positive_class"] == 1 and res["label_classes"] == ["0", "1"]  # two classes: "is it Survived=1"
    # Every input column's weight, largest first; only real columns (one-hot ones named column=value).
    names, w = zip(*res["weights"])
    assert list(w) == sorted(w, reverse=True) and len(names) == res["n_features"] == 12
    assert set(names) == {"Age", "SibSp", "Parch", "Fare", "Sex=female", "Sex=male"} | {
        f"{c}={v}" for c, vs in (("Pclass", "123"), ("Embarked", "CQS")) for v in vs
    }
    assert names[0] == "Sex=female" and names[-1] in ("Sex=male", "Pclass=3")
    assert res["test_accuracy"] > 0.85 > res["test_baseline_never_positive_accuracy"] > 0.5
    assert cv["accuracy"] > cv["baseline_never_positive"]["accuracy"]
    assert "'is it Survived=1' test acc=" in out.stdout and "+" in out.stdout.split("largest first:")[1]
    assert np.load(wd / "decision_scores.npy").shape == (180,)

    # The saved probe and the training rows' preprocessing give the run's test confusion again.
    model = research.load(wd)
    x, y = tabular.apply_state(json.loads((wd / tabular.STATE_FILE).read_text()), path)
    pred, truth = model.predict(x[held]), model.targets(y[held])
    assert list(model.classes_) == [False, True] and pred.dtype == bool
    np.testing.assert_array_equal(confusion_matrix(truth, pred), conf)
    # experiments.predict reads a new table of one row (no label, an id column left in) as in training.
    new = tmp_path / "one.csv"
    with open(path) as f:
        header, *rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(header) if name != "Survived"]
    with open(new, "w", newline="") as f:
        csv.writer(f).writerows([[header[i] for i in keep], [rows[0][i] for i in keep]])
    out = run(["experiments.predict", f"--workdir={wd}", f"--dataset=csv:{new}", "--output=pred/one"], tmp_path)
    assert np.load(tmp_path / "pred" / "one.npy").tolist() == [model.predict(x[:1])[0]], out.stdout


# ---------------------------------------------------------------------------
# The binary, end to end


def test_linear_probe_binary_multiclass(tmp_path):
    out = run(["experiments.linear_probe", "--dataset=digits", "--seed=1"], tmp_path)
    wd = tmp_path / "checkpoints" / "linear_probe" / "digits-seed1"
    res = json.loads((wd / "results.json").read_text())
    assert res["n_train"] == 1500 and res["n_test"] == 297 and res["C"] == 10.0
    assert 0.9 < res["test_accuracy"] <= 1 and res["per_class"]["3"]["support"] == sum(res["confusion"][3])
    assert np.trace(res["confusion"]) == round(res["test_accuracy"] * 297)
    assert (wd / "plots" / "confusion.png").stat().st_size > 10_000
    assert json.loads((wd / "config.json").read_text())["C"] == 10.0
    assert out.stdout.strip().splitlines()[-1].startswith("linear_probe digits test acc=")
    cv = res["cv"]  # 3 folds of the multinomial probe by default; their out-of-fold scores kept
    assert cv["folds"] == 3 and np.array(cv["confusion"]).sum() == 1500 and 0.9 < cv["accuracy"] <= 1
    assert np.load(wd / "decision_scores.npy").shape == (1500, 10)
    model, test = research.load(wd), data.load("digits", "test")
    assert model.classes_.tolist() == list(range(10)) and isinstance(model, saved.SavedProbe)
    assert np.mean(model.predict(test.x) == test.y) == pytest.approx(res["test_accuracy"])


def test_linear_probe_binary_one_vs_rest_with_shift(tmp_path):
    wd = tmp_path / "w"
    flags = ["--positive_class=5", "--augment=shift", "--cv_folds=3", "--standardize", f"--workdir={wd}"]
    out = run(["experiments.linear_probe", "--dataset=digits", *flags], tmp_path)
    res = json.loads((wd / "results.json").read_text())
    assert res["n_train_fitted"] == 5 * 1500 and res["positive_class"] == 5
    cv = res["cv"]
    assert cv["folds"] == 3 and len(cv["accuracy_per_fold"]) == 3
    assert cv["accuracy"] > cv["baseline_never_positive"]["accuracy"] > 0.85
    assert 0.5 < cv["precision"] <= 1 and 0.5 < cv["recall"] <= 1
    assert 0 < res["test_recall"] <= 1 and res["test_baseline_never_positive_accuracy"] > 0.85
    for name in ("pr_curve", "roc_curve", "precision_recall_vs_threshold"):
        assert (wd / "plots" / f"{name}.png").stat().st_size > 10_000
    scores = np.load(wd / "decision_scores.npy")  # out of fold, on the 1500 originals
    assert scores.shape == (1500,) and np.array(cv["confusion"]).sum() == 1500
    assert np.array(cv["baseline_never_positive"]["confusion"])[:, 1].sum() == 0
    test = data.load("digits", "test")  # the saved standardization and probe give the run's test confusion
    model = research.load(wd)
    assert [type(step).__name__ for _, step in model.steps] == ["StandardScaler", "SavedProbe"]
    np.testing.assert_array_equal(confusion_matrix(test.y == 5, model.predict(test.x)), res["confusion"])
    y01 = (data.load("digits", "train").y == 5).astype(int)
    assert cv["roc_auc"] == pytest.approx(roc_auc_score(y01, scores)) and cv["roc_auc"] > 0.95
    at = cv["at_target_precision"]  # --target_precision=0.9 by default
    assert at["target"] == 0.9 and precision_score(y01, scores >= at["threshold"]) >= 0.9
    assert "always 'not 5'" in out.stdout and "precision >= 0.9 from threshold" in out.stdout


def test_linear_probe_binary_reports_bad_flags(tmp_path):
    # (--pretrained's error is tested in test_cluster_images.py: both binaries share experiments/features.py.)
    out = run(
        ["experiments.linear_probe", "--dataset=digits", "--split=test", f"--workdir={tmp_path / 'w'}"], tmp_path, False
    )
    assert out.returncode != 0 and "--split is not used by linear_probe" in out.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written
    args = ["experiments.linear_probe", "--dataset=digits", "--test_fraction=0.2", f"--workdir={tmp_path / 'w'}"]
    out = run(args, tmp_path, False)
    assert out.returncode == 2 and out.stderr.startswith("error: --test_fraction: dataset 'digits' has its own test")
    assert not (tmp_path / "w").exists()


def test_linear_probe_binary_on_a_pretrained_encoder(tmp_path, digits):
    # An autoencoder saved as experiments.autoencoder saves it; the probe trains on its 8-d codes.
    from research import nets
    from research.deep import pretrain

    train, _ = digits
    model = nets.build("mlp:32-8", 64)
    params = pretrain.pretrain(jax.random.key(0), model, train.x, pretrain.PretrainConfig(batch_size=100, epochs=20))
    spec = {"arch": "mlp:32-8", "input_dim": 64, "image_shape": [8, 8], "activation": "relu", "init": "glorot"}
    pretrain.save_model(tmp_path / "ae", {**spec, "loss": "mse", "dataset": "digits"}, params)
    wd = tmp_path / "w"
    run(
        ["experiments.linear_probe", "--dataset=digits", f"--pretrained={tmp_path / 'ae'}", f"--workdir={wd}"], tmp_path
    )
    res = json.loads((wd / "results.json").read_text())
    assert res["features"] == "pretrained" and res["n_features"] == 8 and res["test_accuracy"] > 0.6
