"""`--also-on` from numbers alone: the spec, and what the two differences say."""

import pytest

from promptyard.errors import UserError
from promptyard.evaluation import PairedComparison
from promptyard.optimization import OtherModel, Portability, parse_also_on

HERE = PairedComparison(0.5, 0.7, 0.2, 0.1, 0.3, 0.95, 200)


def test_endpoint_and_model_are_split_at_the_last_slash():
    assert parse_also_on("http://127.0.0.1:8089/v1/smollm2-135m-instruct") == OtherModel(
        "http://127.0.0.1:8089/v1", "smollm2-135m-instruct")
    assert parse_also_on(" https://api.openai.com/v1/gpt-4o-mini ").label == "gpt-4o-mini at https://api.openai.com/v1"


@pytest.mark.parametrize("spec", ["gpt-4o", "http://host", "http://host:8000/v1/", "host:8000/v1/m", ""])
def test_anything_else_is_refused_with_an_example(spec):
    with pytest.raises(UserError, match=r"is not ENDPOINT/MODEL: .* e\.g\. --also-on http://127\.0\.0\.1:8089/v1/"):
        parse_also_on(spec)


@pytest.mark.parametrize("there, transfers, ending", [
    (PairedComparison(0.6, 0.75, 0.15, 0.05, 0.25, 0.95, 200), True, "the gain transfers"),
    (PairedComparison(0.6, 0.62, 0.02, -0.05, 0.09, 0.95, 200), False, "no significant gain there"),
    (PairedComparison(0.6, 0.45, -0.15, -0.25, -0.05, 0.95, 200), False, "the winner is significantly worse there"),
])
def test_both_differences_with_intervals(there, transfers, ending):
    p = Portability(OtherModel("http://h/v1", "m"), HERE, there, calls=400)
    assert p.transfers is transfers
    text = p.describe()
    assert text.startswith(f"on m at http://h/v1: seed {there.baseline:.3f}, winner {there.candidate:.3f}, difference "
                           f"{there.diff:+.3f} [{there.low:+.3f}, {there.high:+.3f}] (n=200) against +0.200 "
                           "[+0.100, +0.300] here: ")
    assert text.endswith(ending)


def test_a_model_that_could_not_be_scored_says_why():
    p = Portability(OtherModel("http://h/v1", "m"), HERE, None, failure="TooManyErrorsError: 9 of 10 failed")
    assert p.transfers is None
    assert p.describe() == ("on m at http://h/v1: not measured (TooManyErrorsError: 9 of 10 failed); here +0.200 "
                            "[+0.100, +0.300]")
