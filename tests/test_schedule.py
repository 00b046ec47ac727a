from gptwiz.common.schedule import effective_warmup, lr_at


def test_warmup_is_capped_at_a_tenth_of_the_run():
    assert effective_warmup(2000, 100_000) == 2000
    assert effective_warmup(2000, 5000) == 500
    assert effective_warmup(100, 50) == 5


def test_warmup_then_cosine_to_min_lr_at_max_iters():
    kw = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, decay_iters=100)
    assert lr_at(0, **kw) < lr_at(5, **kw) < lr_at(9, **kw) <= 1e-3
    assert abs(lr_at(10, **kw) - 1e-3) < 1e-12
    assert abs(lr_at(55, **kw) - 5.5e-4) < 1e-9
    assert abs(lr_at(99, **kw) - 1e-4) < 1e-6
    assert lr_at(150, **kw) == 1e-4
