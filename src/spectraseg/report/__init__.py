"""The report: one self-contained `report.html` per run or evaluation, for looking, not reading.

    collect     folders (training runs, evaluations, `spectraseg run` folders) → `ReportSource`s
    reading     downsampled reads of images, predictions and truth (bounded memory)
    validation  a training run's validation windows predicted again, as scenes to show
    composite   band choice and percentile stretch for an RGB or false-colour preview
    figures     matplotlib (Agg) figures as PNG bytes
    page        the HTML page: figures as PNG data URIs, a few lines of inline JavaScript
    build       `write_report`: the page and its figures, written atomically

Nothing is imported here: the CLI verbs import the module they need.
"""
