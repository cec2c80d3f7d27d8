/* The store's anchor outside its file: its write counter, as remhsmd
 * records it in its audit log at every start and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rhs.h"

uint64_t rhs_anchor_last(const char *log_path)
{
	FILE *f = fopen(log_path, "r");
	if (!f)
		return 0;
	static const char tag[] = " " RHS_ANCHOR_EVENT " counter=";
	char line[4096];
	uint64_t last = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, tag);
		if (at)
			last = strtoull(at + sizeof(tag) - 1, NULL, 10);
	}
	fclose(f);
	return last;
}
