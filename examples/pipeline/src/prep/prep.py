"""Split scikit-learn's bundled wine data into train.csv and test.csv in the output folder."""

import argparse
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--test-size", type=float, default=0.25)
parser.add_argument("--out", required=True)
args = parser.parse_args()

frame = load_wine(as_frame=True).frame
train, test = train_test_split(frame, test_size=args.test_size, random_state=0, stratify=frame["target"])
out = Path(args.out)
train.to_csv(out / "train.csv", index=False)
test.to_csv(out / "test.csv", index=False)
print(f"wrote {len(train)} training and {len(test)} test rows to {out}")
