# The report's front page and HTML tables: their inputs and names (rules front_page and table_html
# are in checklist.smk).


# The one-sentence sample-size statement of rule sample_size, shown on the front page.
SAMPLE_SIZE_SENTENCE = "results/tables/sample_size_sentence.txt"


def front_page_inputs(wildcards):
    """Both studies' primary results, what they rest on, and the optional sample-size sentence."""
    out = {
        "primary": "results/tables/primary.csv",
        "auc": "results/tables/auc.csv",
        "patients": "results/split/patients.csv",
        "test": "results/split/test.csv",
        "template": FRONT_TEMPLATE,
    }
    if on("staging"):
        out["claims"] = "results/staging/tables/claims.csv"
    out["sample_size"] = SAMPLE_SIZE_SENTENCE
    return out


# Result tables the report shows as HTML in place (Snakemake offers a CSV only for download):
# name -> (CSV, category, subcategory, study), listed beside the CSV in the same place.
REPORT_TABLES = {
    "primary": ("results/tables/primary.csv", "Primary endpoint", None, "A"),
    "auc": ("results/tables/auc.csv", "Classification", "Tables", "A"),
    "auc_groups": ("results/tables/auc_groups.csv", "Classification", "Tables", "A"),
    "calibration": (
        "results/tables/calibration.csv",
        "Classification",
        "Calibration",
        "A",
    ),
    "anova": ("results/tables/anova.csv", "Statistical tests", None, "A"),
    "mrmc": ("results/tables/mrmc.csv", "Statistical tests", None, "A"),
    "auc_pairs": ("results/tables/auc_pairs.csv", "Statistical tests", None, "A"),
    "cam_tests": ("results/tables/cam_tests.csv", "Statistical tests", None, "A"),
    "checklist": ("results/checklist.csv", "Checklist", None, "A"),
    "table3_preprocessing": (
        "results/staging/tables/table3_preprocessing.csv",
        "Staging",
        "Tables",
        "B",
    ),
    "table4_models": (
        "results/staging/tables/table4_models.csv",
        "Staging",
        "Tables",
        "B",
    ),
    "table5_comparison": (
        "results/staging/tables/table5_comparison.csv",
        "Staging",
        "Tables",
        "B",
    ),
    "claims": ("results/staging/tables/claims.csv", "Staging", "Tables", "B"),
}


def report_tables():
    """The HTML tables of this configuration's studies."""
    return expand(
        "results/report/tables/{table}.html",
        table=[k for k, v in REPORT_TABLES.items() if v[3] == "A" or on("staging")],
    )


def table_simulated(wildcards):
    """The notice above a table whose patients were generated (the study's cohort is synthetic)."""
    study = REPORT_TABLES[wildcards.table][3]
    source = config["cohort"]["source"] if study == "A" else STG["cohort"]["source"]
    if source != "synthetic":
        return ""
    return "Simulated: generated phantom patients; the numbers describe the workflow, not clinical performance."
