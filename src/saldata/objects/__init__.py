"""Object annotations placed on an output's images: ``saldata objects OUT --coco FILE --visual-genome DIR``.

Data flows one way: a source file is read once and indexed (``coco.py``, ``visual_genome.py``:
``Annotation`` items, ``annotation.py``), each annotation is joined to the catalog's images and
placed at the stored size (``join.py``, ``placement.py``), and the rows of the sources given
replace theirs in the ``objects`` and ``object_masks`` tables under one commit record
(``table.py``). ``saldata.open(OUT).objects()`` and ``.object_mask(idx, object_id)`` read them.
"""
