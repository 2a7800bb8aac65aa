"""The peers a user would reach for instead of cloudmerge, each as a small
program run in its own process so that its time and memory are its own.

  python bench/peers.py TOOL X Y OUT

TOOL: pandas | duckdb | duckdb_ordered | polars | polars_lazy | polars_lazy_ordered
Every peer reads the ID column as the type it infers and the value column as
text (so values are written through unchanged, like cloudmerge), joins on ID,
and writes TSV with the header ID_x, value_x, value_y.
"""
import sys


def pandas_merge(x, y, out):
    import pandas as pd
    a = pd.read_csv(x, sep="\t", dtype={"value": str}, keep_default_na=False)
    b = pd.read_csv(y, sep="\t", dtype={"value": str}, keep_default_na=False)
    m = a.merge(b, on="ID", how="inner")  # inner merge keeps the left (x) order
    m.columns = ["ID_x", "value_x", "value_y"]
    m.to_csv(out, sep="\t", index=False)


def duckdb_join_query(x, y, ordered, id_type):
    """The COPY statement of the join in DuckDB SQL; ordered: the script's order (x's file order, then y's)."""
    read = "read_csv('{}', delim='\t', header=true, columns={{'ID': '%s', 'value': 'VARCHAR'}})" % id_type
    if ordered:
        q = (f"SELECT a.ID AS ID_x, a.value AS value_x, b.value AS value_y FROM "
             f"(SELECT *, row_number() OVER () AS rn FROM {read.format(x)}) a JOIN "
             f"(SELECT *, row_number() OVER () AS rn FROM {read.format(y)}) b ON a.ID = b.ID ORDER BY a.rn, b.rn")
    else:
        q = (f"SELECT a.ID AS ID_x, a.value AS value_x, b.value AS value_y FROM {read.format(x)} a "
             f"JOIN {read.format(y)} b ON a.ID = b.ID")
    return q


def duckdb_join(x, y, out, ordered, id_type):
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"COPY ({duckdb_join_query(x, y, ordered, id_type)}) TO '{out}' (DELIMITER '\t', HEADER, QUOTE '')")


def polars_join(x, y, out):
    import polars as pl
    a = pl.read_csv(x, separator="\t", schema_overrides={"value": pl.Utf8})
    b = pl.read_csv(y, separator="\t", schema_overrides={"value": pl.Utf8})
    m = a.join(b, on="ID", how="inner")
    m.columns = ["ID_x", "value_x", "value_y"]
    m.write_csv(out, separator="\t", quote_style="never")


def polars_lazy_join(x, y, out, ordered):
    """Polars' streaming engine: scan_csv -> join -> sink_csv, never holding a whole input
    as a DataFrame. ordered: maintain_order="left_right" (x's order, then y's: the script's)."""
    import polars as pl
    a = pl.scan_csv(x, separator="\t", schema_overrides={"value": pl.Utf8})
    b = pl.scan_csv(y, separator="\t", schema_overrides={"value": pl.Utf8})
    m = a.join(b, on="ID", how="inner", maintain_order="left_right" if ordered else "none")
    m = m.select(pl.col("ID").alias("ID_x"), pl.col("value").alias("value_x"), pl.col("value_right").alias("value_y"))
    m.sink_csv(out, separator="\t", quote_style="never")


def main():
    tool, x, y, out = sys.argv[1:5]
    if tool == "pandas":
        pandas_merge(x, y, out)
    elif tool in ("duckdb", "duckdb_ordered"):
        with open(x) as f:
            f.readline()
            id_type = "VARCHAR" if f.readline().startswith("G") else "BIGINT"
        duckdb_join(x, y, out, tool == "duckdb_ordered", id_type)
    elif tool == "polars":
        polars_join(x, y, out)
    elif tool in ("polars_lazy", "polars_lazy_ordered"):
        polars_lazy_join(x, y, out, tool == "polars_lazy_ordered")
    else:
        sys.exit(f"unknown tool {tool}")


if __name__ == "__main__":
    main()
