"""A LightGBM champion predicts through its Booster directly (the scikit-learn wrapper's
per-call overhead is a third of a one-draft answer): the same values as the wrapper."""

import numpy as np
import pytest

from training.families.lightgbm import LightGBMFitted


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_booster_predictions_equal_the_wrapper(kind):
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values go the learned way in both
    y = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1]) + rng.normal(0, 0.1, 400)
    cls = lgb.LGBMClassifier if kind == "classification" else lgb.LGBMRegressor
    target = (y > 0).astype(int) if kind == "classification" else y
    est = cls(n_estimators=40, num_leaves=7, n_jobs=2, verbose=-1, random_state=0)
    # early stopping on a validation set: the best iteration must be the one both use
    est.fit(
        x[:300],
        target[:300],
        eval_set=[(x[300:], target[300:])],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )
    fitted = LightGBMFitted(est, kind, "lightgbm")
    want = est.predict_proba(x)[:, 1] if kind == "classification" else est.predict(x)
    np.testing.assert_allclose(fitted.predict(x), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fitted.predict(x[:1]), want[:1], rtol=0, atol=1e-12)
