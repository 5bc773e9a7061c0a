import pytest

from functions.errors import UnsupportedLabelConfig
from functions.label_config import ChoicesControl, parse_label_config

SIMPLE = '<View><Text name="news" value="$text"/><Choices name="topic" toName="news"><Choice value="A"/><Choice value="B"/></Choices></View>'


def test_simple_config_gives_one_control():
    config = parse_label_config(SIMPLE)
    assert config.controls == (ChoicesControl("topic", "news", "text", ("A", "B"), False),)
    assert config.require_controls() == config.controls


def test_alias_multiple_and_nested_views():
    xml = """<View><Header value="Read"/><View><HyperText name="body" value="$article"/></View>
      <Choices name="tags" toName="body" choice="multiple"><View><Choice value="Long name" alias="L"/></View>
      <Choice value="Other"/></Choices></View>"""
    (control,) = parse_label_config(xml).controls
    assert control == ChoicesControl("tags", "body", "article", ("L", "Other"), True)


def test_controls_that_are_not_whole_text_choices_are_set_aside_with_reasons():
    xml = """<View><Text name="t" value="$text"/><Image name="img" value="$image"/>
      <Labels name="ner" toName="t"><Label value="PER"/></Labels>
      <Choices name="region" toName="t" perRegion="true"><Choice value="x"/></Choices>
      <Choices name="pic" toName="img"><Choice value="cat"/></Choices>
      <Choices name="dyn" toName="t" value="$options"/>
      <TextArea name="note" toName="t"/></View>"""
    config = parse_label_config(xml)
    assert config.controls == ()
    reasons = " | ".join(config.ignored)
    assert "perRegion" in reasons and "not a <Text> object" in reasons and "task data" in reasons
    assert "<Labels name='ner'>" in reasons and "<TextArea name='note'>" in reasons
    with pytest.raises(UnsupportedLabelConfig, match="supports one or more <Choices> over a <Text>"):
        config.require_controls()


@pytest.mark.parametrize("xml", ["", "   ", "<View>", "not xml at all"])
def test_empty_or_broken_xml_is_a_clear_error(xml):
    with pytest.raises(UnsupportedLabelConfig, match="label config"):
        parse_label_config(xml)


def test_entity_expansion_is_refused():
    bomb = '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><View>&b;</View>'
    with pytest.raises(UnsupportedLabelConfig, match="forbidden XML"):
        parse_label_config(bomb)


def test_text_loaded_from_url_is_not_classified():
    xml = '<View><Text name="t" value="$url" valueType="url"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>'
    assert parse_label_config(xml).controls == ()


def test_duplicate_control_names_keep_the_first_and_say_why():
    xml = ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices>'
           '<Choices name="c" toName="t"><Choice value="x"/></Choices></View>')
    config = parse_label_config(xml)
    assert [c.labels for c in config.controls] == [("a", "b")]
    assert config.ignored == ("<Choices name='c'>: another <Choices> has the same name",)


def test_thousands_of_choices_are_read_in_order_without_duplicates():
    choices = "".join(f'<Choice value="l{i % 20_000}"/>' for i in range(40_000))
    (control,) = parse_label_config(f'<View><Text name="t" value="$text"/><Choices name="c" toName="t">{choices}</Choices></View>').controls
    assert len(control.labels) == 20_000 and control.labels[:2] == ("l0", "l1")
