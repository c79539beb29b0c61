// Short relative times for lists.

/** e.g. "just now", "3 min ago", "2 h ago", a date after two months. */
export function timeAgo(iso, now = Date.now()) {
  const seconds = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (seconds < 45) return "just now";
  let value = seconds / 60;
  let label = "min";
  for (const [size, name] of [[60, "h"], [24, "d"]]) {
    if (value < size) break;
    value /= size;
    label = name;
  }
  if (label === "d" && value > 60) return new Date(iso).toLocaleDateString();
  return `${Math.round(value)} ${label} ago`;
}
