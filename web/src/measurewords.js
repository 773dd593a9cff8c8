// How the check-in measures (PHQ-9, GAD-7) are named and their severity bands worded, wherever
// a score is shown: the check-in's result, the clinicians' History tab, the saved plan.

export const INSTRUMENT_NAMES = { phq9: "PHQ-9", gad7: "GAD-7" };

/** "moderately severe" for the server's `moderately_severe`; an unknown band as it came. */
export function severityWords(severity) {
  return String(severity ?? "").replaceAll("_", " ");
}
