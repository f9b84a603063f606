"""One image's page: its picture with fixations, its saliency map, and a word's attention overlay.

Choosing a word (and a layer, and a head where drawn) swaps in an overlay drawn when the report
was made (``report.render``): the page's script only picks a file name, it computes nothing.
"""

from __future__ import annotations

import json
from html import escape

from saldata.report.pages import ASSETS, SCALE_PNG, gallery_name, number, shell
from saldata.report.render import HEAD_MEAN

SCRIPT = """
const data = JSON.parse(document.getElementById("page-data").textContent);
const layer = document.getElementById("layer"), head = document.getElementById("head");
const picture = document.getElementById("overlay"), label = document.getElementById("overlay-label");
let chosen = data.words.length ? 0 : null;
function view() {
  const l = layer.value;
  const headsHere = data.views.includes(l + "-0");
  head.disabled = !headsHere;
  if (!headsHere) head.value = "m";
  return l + "-" + head.value;
}
function draw() {
  const key = view();
  if (chosen === null) return;
  const word = data.words[chosen];
  picture.src = data.idx + "/L" + layer.value + "-H" + head.value + "-W" + word.word_index + ".jpg";
  picture.alt = "attention of " + word.word;
  label.textContent = data.labels[key][chosen] + " - layer " + layer.value +
    (head.value === "m" ? ", heads averaged" : ", head " + head.value);
  document.querySelectorAll(".words button").forEach((b, i) => b.classList.toggle("chosen", i === chosen));
}
document.querySelectorAll(".words button").forEach((b, i) => b.addEventListener("click", () => { chosen = i; draw(); }));
layer.addEventListener("change", draw);
head.addEventListener("change", draw);
draw();
"""


def image_page(image, position: int, ids: list[int], per_page: int, layers, head_layers, n_heads, nss) -> str:
    """``image`` is a ``render.ImagePage``; ``ids`` the gallery's idx order; ``nss`` layer -> NSS or None."""
    page = position // per_page + 1
    nav = [f'<a href="../{gallery_name(page)}">gallery page {page}</a>']
    if position > 0:
        nav.append(f'<a rel="prev" href="{ids[position - 1]}.html">previous image</a>')
    if position + 1 < len(ids):
        nav.append(f'<a rel="next" href="{ids[position + 1]}.html">next image</a>')
    parts = [f"<h1>{escape(image.image_id)}</h1>", f"<p>{' | '.join(nav)}</p>"]
    if nss:
        scores = ", ".join(
            f'layer {layer}: <span class="nss" data-layer="{layer}"{"" if v is None else f" data-nss={v!r}"}>'
            f"{number(v)}</span>"
            for layer, v in sorted(nss.items())
        )
        parts.append(f'<p id="image-nss">Description NSS (heads averaged): {scores}</p>')
    parts.append(_controls(layers, head_layers, n_heads))
    parts.append(_words(image))
    parts.append(_pictures(image))
    views = [f"{layer}-{HEAD_MEAN}" for layer in layers] + [f"{la}-{h}" for la in head_layers for h in range(n_heads)]
    blob = {"idx": image.idx, "words": image.words, "labels": image.labels, "views": views}
    text = json.dumps(blob).replace("</", "<\\/")  # never ends the script element early
    parts.append(f'<script type="application/json" id="page-data">{text}</script><script>{SCRIPT}</script>')
    return shell(image.image_id, "".join(parts), root="../")


def _pictures(image) -> str:
    note = f' <span class="muted">({escape(image.picture_error)}; drawn on grey)</span>' if image.picture_error else ""
    figures = [
        f'<figure><img src="{image.idx}/picture.jpg" alt="image with fixations">'
        f"<figcaption>the image, {image.n_fixations} fixation points{note}</figcaption></figure>"
    ]
    if image.has_saliency:
        figures.append(
            f'<figure><img src="{image.idx}/saliency.jpg" alt="saliency map"><figcaption>saliency map '
            "(its own min to max, in the colour scale)</figcaption></figure>"
        )
    else:
        figures.append('<figure><p class="muted">no ground truth for this image</p></figure>')
    figures.append(
        '<figure><img id="overlay" alt="attention overlay"><figcaption id="overlay-label">choose a word</figcaption>'
        f'<img src="../{ASSETS}/{SCALE_PNG}" alt="colour scale" style="height:12px">'
        "<div class=\"scale\"><span>word's min</span><span>word's max</span></div></figure>"
    )
    return f'<div class="pictures">{"".join(figures)}</div>'


def _controls(layers, head_layers, n_heads) -> str:
    last = layers[-1]  # the default, as in show
    layer_options = "".join(
        f'<option value="{layer}"{" selected" if layer == last else ""}>{layer}</option>' for layer in layers
    )
    head_options = f'<option value="{HEAD_MEAN}">mean</option>'
    head_options += "".join(f'<option value="{h}">{h}</option>' for h in range(n_heads if head_layers else 0))
    hidden_layer = "" if len(layers) > 1 else ' style="display:none"'
    hidden_head = "" if head_layers else ' style="display:none"'
    heads_note = f" (each head drawn at layer {', '.join(map(str, head_layers))})" if head_layers else ""
    return (
        f'<p><label{hidden_layer}>layer <select id="layer">{layer_options}</select></label> '
        f'<label{hidden_head}>head <select id="head">{head_options}</select>{heads_note}</label></p>'
    )


def _words(image) -> str:
    """The description with each drawn word a button, the text between them as it is."""
    text, parts, end = image.text, [], 0
    for w in image.words:
        start, stop = w["char_start"], w["char_end"]
        parts.append(escape(text[end:start]))
        parts.append(f'<button type="button" data-word-index="{w["word_index"]}">{escape(text[start:stop])}</button>')
        end = stop
    parts.append(escape(text[end:]))
    body = "".join(parts) or '<i class="muted">(no description)</i>'
    return f'<p class="words">{body}</p>'
