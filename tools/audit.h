#ifndef RH_AUDIT_CMD_H
#define RH_AUDIT_CMD_H

/* `remhsm audit verify FILE`: checks remhsmd's hash-chained audit log. */
int rh_audit_main(int argc, char **argv);

#endif
