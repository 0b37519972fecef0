"""The vocabulary of the readmission use case: raw columns, category levels and the feature list.

Defined once here and read by the cleaning (``cleaning``), the generator (``generator``) and the use
case (``mlops.projects.readmission``, whose spec's features are ``FEATURES``): a feature or level
added here is added everywhere.

Categoricals whose values the feature mapping produces from a fixed code list (age band, admission
type, discharge group, admission source, lab results, medication states, ...) have closed
``categories``, so the data gate rejects a value that cannot come from the file. ``medical_specialty``
stays open: the real vocabulary is long-tailed and grows (a new specialty is a legitimate value, not
a broken row). Numeric ranges are the file's own bounds with headroom (``time_in_hospital`` is 1-14
days by the study's inclusion criterion).
"""

from __future__ import annotations

from mlops.spec import Feature

MEDICATIONS: tuple[str, ...] = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)

RAW_COLUMNS: tuple[str, ...] = (
    "encounter_id",
    "patient_nbr",
    "race",
    "gender",
    "age",
    "weight",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "time_in_hospital",
    "payer_code",
    "medical_specialty",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "diag_1",
    "diag_2",
    "diag_3",
    "number_diagnoses",
    "max_glu_serum",
    "A1Cresult",
    *MEDICATIONS,
    "change",
    "diabetesMed",
    "readmitted",
)
RAW_TARGET = "readmitted"
TARGET = "readmitted_30d"

# Discharge dispositions meaning death or hospice: such patients cannot be readmitted.
EXCLUDED_DISCHARGES = (11, 13, 14, 19, 20, 21)

RACES = ("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other")
GENDERS = ("Female", "Male")
AGE_BANDS = ("0-40", "40-50", "50-60", "60-70", "70-80", "80-90", "90-100")
ADMISSION_TYPES = ("emergency", "urgent", "elective", "other", "unknown")
DISCHARGE_GROUPS = ("home", "home_health", "snf", "other_facility", "left_ama", "unknown")
ADMISSION_SOURCES = ("emergency_room", "referral", "transfer", "other", "unknown")
DIAG_GROUPS = (
    "circulatory",
    "respiratory",
    "digestive",
    "diabetes",
    "injury",
    "musculoskeletal",
    "genitourinary",
    "neoplasms",
    "other",
)
LAB_RESULTS = ("not_measured", "Norm", ">7", ">8")
GLUCOSE_RESULTS = ("not_measured", "Norm", ">200", ">300")
MED_STATES = ("No", "Steady", "Up", "Down")
CHANGE_VALUES = ("No", "Ch")
YES_NO = ("No", "Yes")

# The most frequent specialties of the real file keep their name; the rest of its (long-tailed)
# vocabulary becomes "Other". A specialty the file never had is kept verbatim: the model ignores an
# unknown level (one-hot, handle_unknown="ignore"), and drift detection sees it as a new level.
TOP_SPECIALTIES = (
    "InternalMedicine",
    "Emergency/Trauma",
    "Family/GeneralPractice",
    "Cardiology",
    "Surgery-General",
    "Nephrology",
    "Orthopedics",
    "Orthopedics-Reconstructive",
    "Radiologist",
    "Pulmonology",
    "Psychiatry",
    "Urology",
    "ObstetricsandGynecology",
    "Surgery-Cardiovascular/Thoracic",
    "Gastroenterology",
)
TAIL_SPECIALTIES = (
    "Surgery-Vascular",
    "Surgery-Neuro",
    "PhysicalMedicineandRehabilitation",
    "Oncology",
    "Pediatrics",
    "Hematology/Oncology",
    "Neurology",
    "Pediatrics-Endocrinology",
    "Otolaryngology",
    "Endocrinology",
    "Surgery-Thoracic",
    "Psychology",
    "Podiatry",
    "Surgery-Cardiovascular",
    "Pediatrics-CriticalCare",
    "Hematology",
    "Gynecology",
    "Hospitalist",
    "Radiology",
    "Surgeon",
    "Osteopath",
    "InfectiousDiseases",
    "Surgery-Plastic",
    "Ophthalmology",
    "Pediatrics-Pulmonology",
    "Rheumatology",
    "Anesthesiology-Pediatric",
    "Obstetrics",
    "SurgicalSpecialty",
    "Surgery-Maxillofacial",
    "Pediatrics-Neurology",
    "Anesthesiology",
    "Surgery-Colon&Rectal",
    "Pathology",
    "Cardiology-Pediatric",
    "Endocrinology-Metabolism",
    "PhysicianNotFound",
    "Surgery-Pediatric",
    "Pediatrics-Hematology-Oncology",
    "Pediatrics-EmergencyMedicine",
    "AllergyandImmunology",
    "Psychiatry-Child/Adolescent",
    "Pediatrics-AllergyandImmunology",
    "Dentistry",
    "Surgery-PlasticwithinHeadandNeck",
    "Psychiatry-Addictive",
    "Proctology",
    "Dermatology",
    "SportsMedicine",
    "Speech",
    "Pediatrics-InfectiousDiseases",
    "OutreachServices",
    "Perinatology",
    "Neurophysiology",
    "Resident",
    "DCPTEAM",
    "Obsterics&Gynecology-GynecologicOnco",
)
# Specialties the drift knob introduces (absent from the real file).
DRIFT_SPECIALTIES = ("Telehealth", "VirtualWard")

# The model's features, in the model's column order: the counts as read from the file, the two
# counts derived from the medication columns, then the categoricals.
FEATURES: tuple[Feature, ...] = (
    Feature("time_in_hospital", minimum=1, maximum=14, integer=True, description="Length of stay in days"),
    Feature("num_lab_procedures", minimum=0, maximum=200, integer=True, description="Lab tests performed"),
    Feature("num_procedures", minimum=0, maximum=20, integer=True, description="Procedures (non-lab)"),
    Feature(
        "num_medications", minimum=0, maximum=150, integer=True, description="Distinct medications given"
    ),
    Feature(
        "number_outpatient", minimum=0, maximum=100, integer=True, description="Outpatient visits, prior year"
    ),
    Feature(
        "number_emergency", minimum=0, maximum=100, integer=True, description="Emergency visits, prior year"
    ),
    Feature(
        "number_inpatient", minimum=0, maximum=100, integer=True, description="Inpatient stays, prior year"
    ),
    Feature("number_diagnoses", minimum=1, maximum=20, integer=True, description="Diagnoses entered"),
    Feature(
        "n_active_meds", minimum=0, maximum=23, integer=True, description="Diabetes medications prescribed"
    ),
    Feature("n_med_changes", minimum=0, maximum=23, integer=True, description="Diabetes medications changed"),
    Feature(
        "race",
        "categorical",
        categories=(*RACES, ""),
        nullable=True,
        description='Race as recorded; "" or null when not recorded',
    ),
    Feature(
        "gender",
        "categorical",
        categories=(*GENDERS, ""),
        nullable=True,
        description='"" when the record says Unknown/Invalid',
    ),
    Feature("age_band", "categorical", categories=AGE_BANDS, description="Age in years"),
    Feature("admission_type", "categorical", categories=ADMISSION_TYPES),
    Feature("discharge_group", "categorical", categories=DISCHARGE_GROUPS, description="Discharged to"),
    Feature("admission_source", "categorical", categories=ADMISSION_SOURCES),
    Feature(
        "medical_specialty",
        "categorical",
        description="Specialty of the admitting physician; open vocabulary, 'Unknown' when not recorded",
    ),
    Feature(
        "diag_1_group",
        "categorical",
        categories=(*DIAG_GROUPS, ""),
        nullable=True,
        description="ICD-9 group of the primary diagnosis",
    ),
    Feature("A1Cresult", "categorical", categories=LAB_RESULTS, description="HbA1c test result"),
    Feature("max_glu_serum", "categorical", categories=GLUCOSE_RESULTS, description="Glucose serum test"),
    Feature("insulin", "categorical", categories=MED_STATES),
    Feature("metformin", "categorical", categories=MED_STATES),
    Feature("change", "categorical", categories=CHANGE_VALUES, description="Diabetes medication changed"),
    Feature("diabetesMed", "categorical", categories=YES_NO, description="Any diabetes medication"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "categorical")
# Numerics counted from the medication columns; the other numerics are read from the file as they are.
MEDICATION_COUNTS = ("n_active_meds", "n_med_changes")
COUNT_FEATURES: tuple[str, ...] = tuple(n for n in NUMERIC_FEATURES if n not in MEDICATION_COUNTS)
