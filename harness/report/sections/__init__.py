"""One module per heading of the report, each `section(frame, out_dir) -> list[Block]` over the frame of
`load.load_frame`; `build.SECTIONS` lists them in report order.

A section imports only the report's helper modules (load, frame, format, render, plots), never another section, and
returns no blocks when its data is absent, so a bundle without e.g. int8 files has no empty heading.
"""
