package pipeline

// LifecycleResult exposes lifecycleResult to the external tests.
var LifecycleResult = lifecycleResult
