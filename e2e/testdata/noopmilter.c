/*
 * noopmilter: the cheapest milter that has the same conversation with
 * Postfix as stray has for clean mail with hold and confirm off, built on
 * Sendmail's C libmilter
 * (Debian's libmilter-dev). It asks for no connect, helo, unknown, header
 * or body events, for the macros stray asks for at MAIL and RCPT and no
 * others, takes no reply for MAIL, continues at RCPT and accepts at DATA;
 * it decides nothing. The throughput test runs it next to stray
 * (STRAY_PERF_CMILTER=1) to separate the cost of the milter protocol from
 * the cost of stray.
 *
 * Built with -DHOLD_STEPS it has the conversation stray has with hold and
 * confirm on instead: it may add headers, delete recipients and
 * quarantine, and takes headers and body without a reply to each rather
 * than skipping them (stray needs the content of a message it holds; for
 * clean mail, accepted at DATA, Postfix sends none). What Postfix does
 * differently for that is Postfix's cost, not stray's.
 *
 * usage: noopmilter unix:/path/to/socket
 */
#include <stdio.h>
#include <libmilter/mfapi.h>

static sfsistat negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
			  unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f2; (void)f3;
	*pf0 = 0;
	/* The macros stray asks for, and no others: the same conversation. */
	if ((f0 & SMFIF_SETSYMLIST) != 0 &&
	    smfi_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_authen}") == MI_SUCCESS &&
	    smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i {rcpt_addr}") == MI_SUCCESS)
		*pf0 = SMFIF_SETSYMLIST;
#ifdef HOLD_STEPS
	*pf0 |= f0 & (SMFIF_ADDHDRS | SMFIF_QUARANTINE | SMFIF_DELRCPT | SMFIF_CHGHDRS);
	*pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NR_MAIL |
		     SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY);
#else
	*pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NR_MAIL |
		     SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY);
#endif
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat envfrom(SMFICTX *ctx, char **argv) { (void)ctx; (void)argv; return SMFIS_CONTINUE; }
static sfsistat envrcpt(SMFICTX *ctx, char **argv) { (void)ctx; (void)argv; return SMFIS_CONTINUE; }
static sfsistat data(SMFICTX *ctx) { (void)ctx; return SMFIS_ACCEPT; }

static struct smfiDesc desc = {
	"noopmilter", SMFI_VERSION, 0,
	NULL, NULL, envfrom, envrcpt, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	data, negotiate,
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: noopmilter unix:/path/to/socket\n");
		return 2;
	}
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE)
		return 1;
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
