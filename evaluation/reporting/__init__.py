"""What a reader sees: the figures of one evaluated run, the report that sets runs side by side
(tables, comparison figures, settings) and the Markdown/HTML/LaTeX writer behind them."""
