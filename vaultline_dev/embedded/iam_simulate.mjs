// The embedded AWS's IAM evaluator: @cloud-copilot/iam-simulate behind a JSON-lines pipe.
//
// One long-lived process serves every request of the embedded AWS (vaultline_dev/embedded/iam.py starts it), so an
// authorization costs a round trip over stdin/stdout, not a Node start-up. Each input line is
//   {"id": <int>, "simulation": <iam-simulate Simulation>}
// and each output line is
//   {"id": <int>, "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//    "denials": [<policyType of each reason>], "error": <message, only with "Error">}
// Requests are answered in the order they arrive; the Python side keeps one request in flight at a time.
import { createInterface } from 'node:readline'
import { getDenialReasons, runSimulation } from '@cloud-copilot/iam-simulate'

function analysisOf(response) {
  if (response.resultType === 'single') return [response.result.analysis]
  return response.results.map((r) => r.analysis)
}

async function evaluate(simulation) {
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { result: 'Error', denials: [], error: response.errors.message }
  }
  const denials = []
  if (response.overallResult !== 'Allowed') {
    for (const analysis of analysisOf(response)) {
      for (const reason of analysis ? getDenialReasons(analysis) : []) {
        denials.push(`${reason.denialType}:${reason.policyType}`)
      }
    }
  }
  return { result: response.overallResult, denials }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  let id = null
  let answer
  try {
    const request = JSON.parse(line)
    id = request.id
    answer = await evaluate(request.simulation)
  } catch (error) {
    answer = { result: 'Error', denials: [], error: String(error && error.message ? error.message : error) }
  }
  process.stdout.write(JSON.stringify({ id, ...answer }) + '\n')
}
