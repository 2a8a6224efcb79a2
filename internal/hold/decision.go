package hold

import "github.com/stray-mail/stray/internal/record"

// Decision is the detail of a "decision" event; it moved to package
// record with the recorder (issue 12), and this name stays for the
// dashboard, which reads these events.
type Decision = record.Decision
