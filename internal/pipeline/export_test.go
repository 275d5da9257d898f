package pipeline

// LifecycleResult exposes lifecycleResult to the external tests.
var LifecycleResult = lifecycleResult

// LegacyPerWrite exposes legacyPerWrite to the external tests.
var LegacyPerWrite = &legacyPerWrite
