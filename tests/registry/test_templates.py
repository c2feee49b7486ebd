import pytest

from promptyard.errors import TemplateError
from promptyard.registry import Template, check_variables, diff, render, variables


def test_variables_in_order_of_first_use():
    assert variables("{{b}} and {{ a }} and {{b}}") == ["b", "a"]


def test_render_substitutes_and_runs_no_code():
    assert render("Hi {{name}}, {{ name }}!", {"name": "{{x}} __import__('os')"}) == (
        "Hi {{x}} __import__('os'), {{x}} __import__('os')!")


def test_render_names_missing_variables():
    with pytest.raises(TemplateError, match="No value for template variable\\(s\\) topic"):
        render("About {{topic}}", {"text": "x"})


def test_split_into_instruction_and_body_round_trips():
    text = "Do the task.\n\nBe brief.\n\nReview: {{text}}\nAnswer:"
    t = Template.parse(text)
    assert t.instruction == "Do the task.\n\nBe brief."
    assert t.body == "Review: {{text}}\nAnswer:"
    assert t.text == text
    assert t.with_instruction(" New one. ").text == "New one.\n\nReview: {{text}}\nAnswer:"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("No variables here", "has no {{variable}}"),
    ("Bad {{1x}} placeholder", "malformed placeholder"),
])
def test_bad_templates(text, message):
    with pytest.raises(TemplateError, match=message):
        Template.parse(text)


def test_check_variables_names_the_fix():
    with pytest.raises(TemplateError, match=r"\{\{review\}\} are not provided by the dataset, which has: text, label"):
        check_variables("R: {{review}}", ["text", "label"])
    check_variables("R: {{text}}", ["text", "label"])


def test_diff():
    assert diff("a\nb", "a\nc", "v1", "v2").splitlines() == ["--- v1", "+++ v2", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]
