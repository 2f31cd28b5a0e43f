"""Writes wine.csv: scikit-learn's bundled wine data (178 wines, 13 measurements, 3 cultivars), nothing downloaded.

Run it from this folder with `python prepare.py`; the CSV it writes is committed beside it.
"""

from pathlib import Path

from sklearn.datasets import load_wine

wine = load_wine(as_frame=True)
table = wine.frame.drop(columns="target")
table.columns = [c.replace("/", "_") for c in table.columns]  # od280/od315_of_diluted_wines: a plain name
table["cultivar"] = [str(wine.target_names[i]) for i in wine.target]
table.to_csv(Path(__file__).with_name("wine.csv"), index=False, float_format="%.6g")
