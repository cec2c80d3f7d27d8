/*
 * The simulator's kernel configuration: a preemptive, time-sliced
 * scheduler with a 1 kHz tick and several priorities, as a device's
 * application runs it, on the POSIX port (one host thread per task).
 */
#ifndef FREERTOS_CONFIG_H
#define FREERTOS_CONFIG_H

#include <stdio.h>
#include <stdlib.h>

#define configUSE_PREEMPTION 1
#define configUSE_TIME_SLICING 1
#define configUSE_PORT_OPTIMISED_TASK_SELECTION 0
#define configTICK_RATE_HZ 1000
#define configMAX_PRIORITIES 6
#define configMINIMAL_STACK_SIZE 1024
#define configMAX_TASK_NAME_LEN 16
#define configTICK_TYPE_WIDTH_IN_BITS TICK_TYPE_WIDTH_64_BITS
#define configIDLE_SHOULD_YIELD 1
#define configUSE_MUTEXES 1
#define configUSE_RECURSIVE_MUTEXES 1
#define configUSE_COUNTING_SEMAPHORES 1
#define configQUEUE_REGISTRY_SIZE 0
#define configSUPPORT_DYNAMIC_ALLOCATION 1
#define configSUPPORT_STATIC_ALLOCATION 0
#define configTOTAL_HEAP_SIZE (4 * 1024 * 1024)
#define configUSE_IDLE_HOOK 0
#define configUSE_TICK_HOOK 0
#define configUSE_MALLOC_FAILED_HOOK 0
#define configCHECK_FOR_STACK_OVERFLOW 0
#define configUSE_TRACE_FACILITY 0
#define configGENERATE_RUN_TIME_STATS 0
#define configUSE_CO_ROUTINES 0
#define configUSE_TIMERS 0
#define configUSE_TASK_NOTIFICATIONS 1

#define INCLUDE_vTaskDelete 1
#define INCLUDE_vTaskDelay 1
#define INCLUDE_vTaskDelayUntil 1
#define INCLUDE_vTaskPrioritySet 1
#define INCLUDE_uxTaskPriorityGet 1
#define INCLUDE_vTaskSuspend 1
#define INCLUDE_xTaskGetSchedulerState 1
#define INCLUDE_xTaskGetCurrentTaskHandle 1
#define INCLUDE_eTaskGetState 1

/* Every tick interrupt the kernel takes, counted by the test for its
 * watchdog's report (the tick hook misses ticks the kernel pends). */
void sim_tick_taken(void);
#define traceTASK_INCREMENT_TICK(count) sim_tick_taken()

/* A failed kernel assertion ends the simulator with a message, which the
 * test then reports. */
#define configASSERT(x)                                                        \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "FreeRTOS assertion %s at %s:%d\n",    \
				#x, __FILE__, __LINE__);                       \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
