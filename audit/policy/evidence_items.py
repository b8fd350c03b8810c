"""The review items an audit speaks to: EU AI Act (Regulation (EU) 2024/1689) Annex IV and Article 15, and the
NIST AI RMF 1.0 (NIST AI 100-1) MEASURE subcategories. Each is a short paraphrase with its citation, not the text.

An item is covered when every metric it names is in the run; `untested` says what one audit never shows for it
(then it is covered at most partly), `recorded` what the run's provenance documents instead of a metric.
Each metric requirement is one or more fnmatch patterns separated by `|` (a modality's own metric: text models are
attacked by word substitution, tabular and image ones by gradients): it is met when some metric matches one.
"""

from __future__ import annotations

from dataclasses import dataclass

AI_ACT = "EU AI Act"
AI_RMF = "NIST AI RMF"
AI_ACT_CITATION = "Regulation (EU) 2024/1689"
AI_RMF_CITATION = "NIST AI 100-1 (AI RMF 1.0, 2023)"
POISONING = "data and model poisoning and confidentiality attacks (membership inference, extraction) are not tested"
MODEL_FILE = ("model-file safety checked: checkpoints are read with torch.load(weights_only=True), no pickled code "
              "runs unless --trust-code is given")
ROBUST = "robustness.robust_accuracy|robustness.text_attack_success_rate"
PARITY = "fairness.demographic_parity_difference|fairness.counterfactual_flip_rate"
ODDS = "fairness.equalized_odds_difference|fairness.counterfactual_max_delta"


@dataclass(frozen=True)
class Item:
    framework: str
    ref: str
    text: str
    citation: str
    analyzers: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    untested: str = ""
    recorded: str = ""


ITEMS: tuple[Item, ...] = (
    Item(AI_ACT, "Annex IV 2(d)", "Data requirements: the data used, its provenance, scope and main characteristics",
         f"{AI_ACT_CITATION}, Annex IV, point 2(d)",
         recorded="the audited data's name, source, SHA-256, rows, classes and sensitive attributes",
         untested="how the training data were collected, labelled and cleaned is not described"),
    Item(AI_ACT, "Annex IV 2(g)", "Validation and testing procedures and data; metrics for accuracy, robustness and "
         "potentially discriminatory impacts; dated test logs and reports",
         f"{AI_ACT_CITATION}, Annex IV, point 2(g)", ("performance", "robustness", "fairness"),
         ("performance.accuracy", ROBUST, PARITY),
         untested="the report is dated by the run; it is not signed by a responsible person"),
    Item(AI_ACT, "Annex IV 2(h)", "Cybersecurity measures put in place", f"{AI_ACT_CITATION}, Annex IV, point 2(h)",
         ("robustness",), (ROBUST,), untested=f"{MODEL_FILE}; {POISONING}"),
    Item(AI_ACT, "Annex IV 3", "Capabilities and limitations in performance, including accuracy for the persons or "
         "groups the system is meant for, and foreseeable unintended outcomes",
         f"{AI_ACT_CITATION}, Annex IV, point 3", ("performance", "fairness"), ("performance.accuracy", "fairness.accuracy_difference")),
    Item(AI_ACT, "Annex IV 4", "Why the performance metrics are appropriate for this system",
         f"{AI_ACT_CITATION}, Annex IV, point 4",
         untested="whether these metrics suit the system's purpose is the provider's argument; the audit states "
                  "its metrics and the policy's thresholds, not why they fit"),
    Item(AI_ACT, "Article 15(1)", "An appropriate level of accuracy, robustness and cybersecurity, consistent "
         "throughout the lifecycle", f"{AI_ACT_CITATION}, Article 15(1)", ("performance", "robustness"),
         ("performance.accuracy", ROBUST),
         untested="one audit measures one model on one data set, not consistency after deployment"),
    Item(AI_ACT, "Article 15(3)", "Levels of accuracy and the relevant accuracy metrics, to declare in the "
         "instructions for use", f"{AI_ACT_CITATION}, Article 15(3)", ("performance",),
         ("performance.accuracy", "performance.balanced_accuracy", "performance.macro_f1", "performance.ece")),
    Item(AI_ACT, "Article 15(4)", "Resilience to errors, faults and inconsistencies in the inputs or environment",
         f"{AI_ACT_CITATION}, Article 15(4)", ("robustness",), ("robustness.corruption_accuracy",)),
    Item(AI_ACT, "Article 15(5)", "Resilience against attacks: data or model poisoning, adversarial examples "
         "(model evasion), confidentiality attacks, model flaws", f"{AI_ACT_CITATION}, Article 15(5)",
         ("robustness",), (ROBUST,),
         untested=f"adversarial examples tested; {MODEL_FILE}; {POISONING}"),
    Item(AI_RMF, "MEASURE 2.1", "Test sets, metrics and details of the tools used in testing are documented",
         f"{AI_RMF_CITATION}, MEASURE 2.1", ("performance",), ("performance.accuracy",),
         recorded="the data's SHA-256 and rows, the seed, the command and the library versions"),
    Item(AI_RMF, "MEASURE 2.3", "Performance is measured and shown for conditions like the deployment setting",
         f"{AI_RMF_CITATION}, MEASURE 2.3", ("performance",), ("performance.accuracy",),
         untested="whether the audited data resemble the deployment setting is not checked"),
    Item(AI_RMF, "MEASURE 2.5", "The system is shown valid and reliable; limits of generalization are documented",
         f"{AI_RMF_CITATION}, MEASURE 2.5", ("performance", "robustness"),
         ("performance.accuracy", "performance.ece", "robustness.corruption_accuracy")),
    Item(AI_RMF, "MEASURE 2.7", "Security and resilience are evaluated and documented",
         f"{AI_RMF_CITATION}, MEASURE 2.7", ("robustness",), (ROBUST,),
         untested=f"{MODEL_FILE}; {POISONING}"),
    Item(AI_RMF, "MEASURE 2.9", "The model is explained, validated and documented, and its outputs interpreted in "
         "context", f"{AI_RMF_CITATION}, MEASURE 2.9", ("explanation_quality",),
         ("explanations.*.deletion_auc", "explanations.*.sanity_passed")),
    Item(AI_RMF, "MEASURE 2.10", "Privacy risk of the system is examined and documented",
         f"{AI_RMF_CITATION}, MEASURE 2.10",
         untested="privacy is not tested: no membership-inference or data-extraction attack is run"),
    Item(AI_RMF, "MEASURE 2.11", "Fairness and bias are evaluated and the results documented",
         f"{AI_RMF_CITATION}, MEASURE 2.11", ("fairness",),
         (PARITY, ODDS)),
)
