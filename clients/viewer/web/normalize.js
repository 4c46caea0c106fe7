// Routing and token messages of the API with the fields a protobuf-JSON writer may leave out
// (zero values) filled in, so 0 is never "undefined". m is the model's granularity.

function normChoice(c, m) {
  const id = Number(c.id ?? (c.expert ?? 0) * m + (c.micro ?? 0));
  return { ...c, id, expert: c.expert ?? Math.floor(id / m), micro: c.micro ?? id % m, weight: Number(c.weight ?? 0) };
}
const normShared = (list) => (list || []).map((s) => ({ ...s, expert: s.expert ?? 0 }));

/** One layer's routing r, the i-th of its token. */
export const normRouting = (r, i, m) => ({
  ...r, layer: r.layer ?? i, experts: (r.experts || []).map((c) => normChoice(c, m || 1)), shared: normShared(r.shared),
});

export const normToken = (t, m) => ({
  ...t, position: t.position ?? 0, text: t.text ?? '', is_prompt: !!t.is_prompt,
  routing: (t.routing || []).map((r, i) => normRouting(r, i, m)),
});
