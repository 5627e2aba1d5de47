"""`classes.yaml`: the class list that drives ids, plot colours and label decoding.

```yaml
classes:
  - {name: building, id: 1, colour: "#d62728", values: [yes, house]}
  - {name: water, id: 2, colour: [31, 119, 180]}
unmapped_values: background   # error | ignore | background
ignore_value: 255             # mask value meaning "not labelled"
```
Id 0 is reserved for background in single-band id masks; class masks are (K, H, W) stacks in
the order of the list.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError, field_validator, model_validator

from spectraseg.errors import LabelError, did_you_mean
from spectraseg.settings import Settings

Colour = tuple[int, int, int]


def parse_colour(value: Any) -> Colour:
    """Accept "#rrggbb" or [r, g, b] with 0-255 components."""
    if isinstance(value, str):
        text = value.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {value!r} is not #rrggbb")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    components = tuple(int(c) for c in value)
    if len(components) != 3 or not all(0 <= c <= 255 for c in components):
        raise ValueError(f"colour {value!r} is not three numbers from 0 to 255")
    return (components[0], components[1], components[2])


class ClassSpec(Settings):
    """One class: its name, its id in id masks, its plot colour and the raw values it maps from."""

    name: str
    id: int
    colour: Colour = (128, 128, 128)
    values: tuple[str, ...] = ()

    @field_validator("colour", mode="before")
    @classmethod
    def _colour(cls, value: Any) -> Colour:
        return parse_colour(value)

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, value: Any) -> tuple[str, ...]:
        # Raw values may be numbers in the source (OSM `code`); compare them as text.
        return tuple(str(v) for v in (value or ()))


class ClassList(Settings):
    """The ordered classes of a data set and how to treat raw values that are not listed."""

    classes: tuple[ClassSpec, ...]
    unmapped_values: Literal["error", "ignore", "background"] = "background"
    ignore_value: int | None = None

    @model_validator(mode="after")
    def _unique(self) -> ClassList:
        if not self.classes:
            raise ValueError("the class list is empty")
        for attribute in ("name", "id"):
            seen = [getattr(c, attribute) for c in self.classes]
            duplicates = sorted({str(v) for v in seen if seen.count(v) > 1})
            if duplicates:
                raise ValueError(f"duplicate class {attribute}s: {', '.join(duplicates)}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def colours(self) -> tuple[Colour, ...]:
        return tuple(c.colour for c in self.classes)

    def index_of(self, name: str) -> int:
        """Position of a class in mask stacks, with a did-you-mean when it is unknown."""
        if name in self.names:
            return self.names.index(name)
        raise LabelError(f"unknown class {name!r}{did_you_mean(name, self.names)}")

    def lookup(self) -> dict[str, int]:
        """Raw value (as text) -> class position: names, ids and declared values all map."""
        table: dict[str, int] = {}
        for position, spec in enumerate(self.classes):
            table[spec.name] = position
            table[str(spec.id)] = position
            for value in spec.values:
                table[value] = position
        return table


def classes_from_document(raw: Any, source: str) -> ClassList:
    """Validate a parsed classes.yaml document (a mapping, or the bare list of classes)."""
    if isinstance(raw, list):
        raw = {"classes": raw}
    if not isinstance(raw, dict):
        raise LabelError(f"{source}: expected a mapping with a 'classes' list.")
    listed = raw.get("classes")
    for position, entry in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(entry, str | int | float):
            raise LabelError(
                f"{source}: classes.{position}: {entry!r} is a bare name; each class needs a "
                f"name and an id, e.g. '- {{name: {entry}, id: {position + 1}}}' (colour and "
                "values are optional)."
            )
    try:
        return ClassList.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise LabelError(f"{source}: {where}: {first['msg']}.") from None


def classes_document(classes: ClassList) -> dict[str, Any]:
    """The classes.yaml document that `classes_from_document` reads back unchanged."""
    document: dict[str, Any] = {
        "classes": [
            {
                "name": c.name,
                "id": c.id,
                "colour": "#{:02x}{:02x}{:02x}".format(*c.colour),
                **({"values": list(c.values)} if c.values else {}),
            }
            for c in classes.classes
        ],
        "unmapped_values": classes.unmapped_values,
    }
    if classes.ignore_value is not None:
        document["ignore_value"] = classes.ignore_value
    return document
