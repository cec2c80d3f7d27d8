/*
 * Functions of an application that happen to bear the names of the
 * module's internals (framing, the client's call, protobuf-c's generated
 * code): with the archive's internals local, the application's own
 * definitions link beside it and are the ones its calls reach.
 */
int rh_frame_pack(void);
int rhc_call(void);
int remhsm__request__unpack(void);
int own_names_answer(void);

int rh_frame_pack(void)
{
	return 1;
}

int rhc_call(void)
{
	return 20;
}

int remhsm__request__unpack(void)
{
	return 300;
}

int own_names_answer(void)
{
	return rh_frame_pack() + rhc_call() + remhsm__request__unpack();
}
