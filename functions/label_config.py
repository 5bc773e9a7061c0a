"""Read a Label Studio label config: which `<Choices>` controls classify which text.

Label Studio label configs are XML written by users (and, through the API, by anyone), so
they are parsed with defusedxml: no entities, no DTDs. Rules from Label Studio 1.23:

- ``<Choices name=N toName=T>`` classifies the object ``<Text name=T value="$key">``; the text
  is ``task["data"][key]``. ``<HyperText>`` is accepted as a text object too.
- ``choice="multiple"`` allows several values; ``single`` / ``single-radio`` (default) one.
- ``<Choice value=V alias=A>`` stores A in annotations when given, else V.
- ``perRegion="true"`` choices belong to regions, not the whole text: not classification.
- Choices whose values come from task data (``value="$options"``) have no fixed label set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from functions.errors import UnsupportedLabelConfig

TEXT_OBJECTS = {"text", "hypertext"}
MAX_LENGTH = 1_000_000  # characters; real configs are a few kB, taxonomies rarely pass 100 kB
SUPPORTED = (
    'one or more <Choices> over a <Text> object, e.g. <View><Text name="news" value="$text"/>'
    '<Choices name="topic" toName="news"><Choice value="Sport"/>…</Choices></View>'
)


@dataclass(frozen=True)
class ChoicesControl:
    """One whole-text classification control.

    Attributes:
        name: the control's name, Label Studio's ``from_name``.
        to_name: the text object's name, Label Studio's ``to_name``.
        data_key: the task data key holding the text (``$text`` → ``"text"``).
        labels: the values annotations store (alias if given, else value), in config order.
        multiple: ``choice="multiple"``.
    """

    name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]
    multiple: bool = False


@dataclass(frozen=True)
class LabelConfig:
    """The usable controls of a label config, and why the others were set aside."""

    controls: tuple[ChoicesControl, ...]
    ignored: tuple[str, ...] = field(default=())

    def control(self, name: str) -> ChoicesControl | None:
        """The control named `name`, or None."""
        return next((c for c in self.controls if c.name == name), None)

    def require_controls(self) -> tuple[ChoicesControl, ...]:
        """The controls, or UnsupportedLabelConfig saying what this backend supports."""
        if not self.controls:
            why = f" ({'; '.join(self.ignored)})" if self.ignored else ""
            raise UnsupportedLabelConfig(
                f"the label config has no whole-text classification control{why}; this backend supports {SUPPORTED}"
            )
        return self.controls


def parse_label_config(xml: str | None) -> LabelConfig:
    """Parse `xml` (cached per distinct string: Label Studio resends the same config on every call).

    Raises:
        UnsupportedLabelConfig: empty, longer than MAX_LENGTH, not XML, or forbidden XML
            constructs (entities, DTDs).
    """
    if not xml or not xml.strip():
        raise UnsupportedLabelConfig(f"the label config is empty; this backend supports {SUPPORTED}")
    if len(xml) > MAX_LENGTH:
        raise UnsupportedLabelConfig(f"the label config has {len(xml):,} characters; this backend reads at most {MAX_LENGTH:,}")
    return _parse(xml)


@lru_cache(maxsize=32)
def _parse(xml: str) -> LabelConfig:
    try:
        root = ElementTree.fromstring(xml)
    except DefusedXmlException as error:
        raise UnsupportedLabelConfig(f"the label config uses forbidden XML ({type(error).__name__})") from error
    except ElementTree.ParseError as error:
        raise UnsupportedLabelConfig(f"the label config is not valid XML: {error}") from error

    objects = {el.get("name"): el for el in root.iter() if _tag(el) in TEXT_OBJECTS and el.get("name")}
    controls: dict[str, ChoicesControl] = {}
    ignored: list[str] = []
    for element in root.iter():
        if _tag(element) == "choices":
            control, reason = _choices(element, objects)
            if control and control.name in controls:
                control, reason = None, "another <Choices> has the same name"
            if control:
                controls[control.name] = control
            else:
                ignored.append(f"<Choices name={element.get('name')!r}>: {reason}")
        elif element.get("toName") is not None and _tag(element) != "choice":
            ignored.append(f"<{element.tag} name={element.get('name')!r}>: not a <Choices> control")
    return LabelConfig(tuple(controls.values()), tuple(ignored))


def _choices(element: Element, objects: dict[str | None, Element]) -> tuple[ChoicesControl | None, str]:
    name, to_names = element.get("name"), (element.get("toName") or "").split(",")
    if not name:
        return None, "it has no name"
    if (element.get("perRegion") or "").lower() == "true":
        return None, "perRegion choices label regions, not the whole text"
    if (element.get("value") or "").startswith("$"):
        return None, "its choices come from task data, so there is no fixed label set"
    target = objects.get(to_names[0].strip())
    if target is None:
        return None, f"toName={element.get('toName')!r} is not a <Text> object"
    if (target.get("valueType") or "").lower() == "url":
        return None, "its text object loads text from a URL"
    data_key = (target.get("value") or "").lstrip("$")
    if not (target.get("value") or "").startswith("$") or not data_key:
        return None, f"its text object's value {target.get('value')!r} is not a task data key like $text"
    labels: dict[str, None] = {}  # ordered and O(1) de-duplication: configs may list thousands of choices
    for choice in element.iter():
        if _tag(choice) == "choice":
            label = choice.get("alias") or choice.get("value")
            if label:
                labels.setdefault(label)
    if not labels:
        return None, "it has no <Choice> values"
    multiple = (element.get("choice") or "single").lower() == "multiple"
    return ChoicesControl(name, target.get("name") or "", data_key, tuple(labels), multiple), ""


def _tag(element: Element) -> str:
    return str(element.tag).lower()
