import { useParams } from 'react-router-dom';
import { PageTitle } from '../components/common';
import { RunPanel } from '../components/RunPanel';

export function RunPage() {
  const id = Number(useParams().id);
  return (
    <>
      <PageTitle title={`Run #${id}`} />
      <RunPanel runId={id} />
    </>
  );
}
