"""Candle builder: buckets, completion on a later sample, gaps, late samples."""

from __future__ import annotations

import pytest

from shared.candles import Candle, CandleBuilder

S = 1_000_000_000
I15 = 15 * S


def test_candle_completes_when_a_later_bucket_starts():
    cb = CandleBuilder(I15)
    assert cb.update(0, 10.0) == []
    assert cb.update(5 * S, 12.0) == []
    assert cb.update(10 * S, 9.0) == []
    assert cb.update(14 * S + S - 1, 11.0) == []  # last ns of the bucket
    assert cb.current == Candle(0, 10.0, 12.0, 9.0, 11.0, 4)
    done = cb.update(15 * S, 11.5)  # first ns of the next bucket
    assert done == [Candle(0, 10.0, 12.0, 9.0, 11.0, 4)]
    assert cb.current == Candle(15 * S, 11.5, 11.5, 11.5, 11.5, 1)


def test_buckets_are_aligned_to_the_epoch():
    cb = CandleBuilder(I15)
    cb.update(1_757_900_007 * S, 1.0)
    assert cb.current.start_ns == 1_757_899_995 * S  # the multiple of 15 s just before


def test_empty_buckets_produce_no_candle_by_default():
    cb = CandleBuilder(I15)
    cb.update(1 * S, 10.0)
    done = cb.update(46 * S, 20.0)  # buckets 1 and 2 empty
    assert done == [Candle(0, 10.0, 10.0, 10.0, 10.0, 1)]
    assert cb.current.start_ns == 45 * S


def test_fill_gaps_forward_fills_flat_candles():
    cb = CandleBuilder(I15, fill_gaps=True, max_fill=5)
    cb.update(1 * S, 10.0)
    cb.update(2 * S, 11.0)
    done = cb.update(46 * S, 20.0)
    assert done == [Candle(0, 10.0, 11.0, 10.0, 11.0, 2),
                    Candle(15 * S, 11.0, 11.0, 11.0, 11.0, 0),
                    Candle(30 * S, 11.0, 11.0, 11.0, 11.0, 0)]


def test_fill_gaps_does_not_fill_an_outage_longer_than_max_fill():
    cb = CandleBuilder(I15, fill_gaps=True, max_fill=2)
    cb.update(1 * S, 10.0)
    done = cb.update(61 * S, 20.0)  # 3 empty buckets > max_fill
    assert done == [Candle(0, 10.0, 10.0, 10.0, 10.0, 1)]


def test_late_samples_are_dropped_and_counted():
    cb = CandleBuilder(I15)
    cb.update(16 * S, 10.0)
    assert cb.update(14 * S, 99.0) == []
    assert cb.late == 1
    assert cb.current == Candle(15 * S, 10.0, 10.0, 10.0, 10.0, 1)


def test_bad_interval():
    with pytest.raises(ValueError):
        CandleBuilder(0)
