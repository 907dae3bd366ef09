"""Pure figure functions: data (DataFrames, dicts) in, ``go.Figure`` out.

They never read the clock or the store and never raise PreventUpdate; callbacks fetch the data
and call them.
"""
