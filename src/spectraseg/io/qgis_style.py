"""QGIS styles (`.qml`) for what spectraseg writes, so a map shows the classes as they are.

QGIS applies a style file named like a layer (`scene_classes.qml` beside `scene_classes.tif`,
`scene.qml` beside `scene.geojson`) when it opens the layer: the class map then shows each
class in its classes.yaml colour with its name, and the polygons are filled by class.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from spectraseg.classes import Colour

__all__ = ["class_map_style", "polygon_style"]

HEADER = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def class_map_style(
    class_names: Sequence[str], class_ids: Sequence[int], colours: Sequence[Colour]
) -> str:
    """The QGIS style (`.qml`) of a class map: a paletted renderer naming each class."""
    entries = "\n".join(
        f'        <paletteEntry value="{int(class_id)}" color="#{red:02x}{green:02x}{blue:02x}"'
        f' alpha="255" label={quoteattr(name)}/>'
        for name, class_id, (red, green, blue) in zip(class_names, class_ids, colours, strict=True)
    )
    return (
        HEADER + '<qgis version="3.28.0" styleCategories="Symbology">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1">\n'
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        "  </pipe>\n"
        "</qgis>\n"
    )


def polygon_style(
    class_names: Sequence[str], colours: Sequence[Colour], *, attribute: str = "class_name"
) -> str:
    """The QGIS style of a polygon layer: filled by `attribute`, one category per class."""
    categories = "\n".join(
        f'      <category value={quoteattr(name)} symbol="{k}" label={quoteattr(name)}'
        ' render="true"/>'
        for k, name in enumerate(class_names)
    )
    symbols = "\n".join(
        f'      <symbol type="fill" name="{k}" alpha="0.6" clip_to_extent="1" force_rhr="0">\n'
        '        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
        '          <Option type="Map">\n'
        f'            <Option type="QString" name="color" value="{r},{g},{b},255"/>\n'
        f'            <Option type="QString" name="outline_color" value="{r},{g},{b},255"/>\n'
        '            <Option type="QString" name="outline_width" value="0.26"/>\n'
        '            <Option type="QString" name="style" value="solid"/>\n'
        "          </Option>\n"
        "        </layer>\n"
        "      </symbol>"
        for k, (r, g, b) in enumerate(colours)
    )
    return (
        HEADER
        + '<qgis version="3.28.0" styleCategories="Symbology">\n'
        + f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(attribute)}'
        + ' symbollevels="0" enableorderby="0" forceraster="0">\n'
        + f"    <categories>\n{categories}\n    </categories>\n"
        + f"    <symbols>\n{symbols}\n    </symbols>\n"
        + "  </renderer-v2>\n</qgis>\n"
    )
